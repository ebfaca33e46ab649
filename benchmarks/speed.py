"""Speed and memory benchmark (issue: evaluation suite; paper supplement S4).

Measures, for one checkpoint and one image size, each in its own process (so that
peak memory and cold start are per task, not cumulative):
  * cold start: wall time of one `python examples/<family>.py compress` call
    (interpreter, TensorFlow import, weight loading, encoding, writing), and of
    one `decompress` call;
  * amortized encode (analysis + range coding to bytes) and decode (range decoding
    + synthesis) seconds per image, warm, median of --repeats;
  * iterative inference: seconds per iteration and per iteration per megapixel
    for sga, map, ste, unoise, danneal (and bb_sga: joint SGA + BBVI step), with
    the true-loss evaluation every 10 iterations included as users run it; the
    projected time of --full_iterations iterations and its slowdown relative to
    amortized encoding (the paper reports about 100x on a GPU);
  * peak resident memory (MiB) of every process.

  python benchmarks/speed.py                       # Kodak-sized synthetic image
  python benchmarks/speed.py --image ../shared/data/kodak/kodim01.png

Prints a table and writes --output (JSON). Timings depend on the machine and on
other load: the JSON records the CPU count and the 1-minute load average.
"""

import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from tfc_inference.util import child_process  # pylint: disable=g-import-not-at-top
from tfc_inference.models import shipped_runs  # pylint: disable=g-import-not-at-top

flags.DEFINE_string("run", shipped_runs.BASE_RUN,
                    "Mean-scale run (bb_sga uses the mbt2018_bb run of the same "
                    "filters and lambda).")
flags.DEFINE_string("checkpoint_dir", None, "Run folder (default: shipped).")
flags.DEFINE_string("image", None,
                    "Image to time; default: a synthetic image of --size.")
flags.DEFINE_string("size", "512x768", "HxW of the synthetic image (Kodak size).")
flags.DEFINE_list("methods", ["sga", "map", "ste", "unoise", "danneal", "bb_sga"],
                  "Iterative methods to time.")
flags.DEFINE_integer("iterations", 20,
                     "Timed iterations per iterative method (after a traced "
                     "warm-up run of as many).")
flags.DEFINE_integer("full_iterations", 2000,
                     "Iterations the projected full-run time assumes.")
flags.DEFINE_integer("repeats", 5, "Timed repeats of amortized encode/decode.")
flags.DEFINE_enum("compute_dtype", "float32", ["float32", "bfloat16"],
                  "Dtype of the relaxed objective's synthesis (iterative methods).")
flags.DEFINE_integer("bits_back_decode_its", 2000,
                     "Reproducible-BBVI iterations of the bits-back file whose "
                     "cold decode is timed (bb_no_sga file; 0: skip).")
flags.DEFINE_string("output", "results/speed/speed.json", "JSON output.")
flags.DEFINE_string("measure", None,
                    "Internal: run one measurement in this process and print "
                    "its JSON (amortized, or an iterative method).")
flags.DEFINE_string("image_npy", None, "Internal: the image as .npy.")
FLAGS = flags.FLAGS


def run_process(args):
  """Runs `args`; returns (wall seconds, peak RSS MiB, stdout). Raises on failure."""
  return child_process.run_measured(args, cwd=ROOT)


def measure_child(kind, image_npy):
  args = [sys.executable, os.path.abspath(__file__), "--measure", kind,
          "--image_npy", image_npy, "--run", FLAGS.run,
          "--iterations", str(FLAGS.iterations), "--repeats", str(FLAGS.repeats),
          "--compute_dtype", FLAGS.compute_dtype]
  if FLAGS.checkpoint_dir:
    args += ["--checkpoint_dir", FLAGS.checkpoint_dir]
  seconds, peak, text = run_process(args)
  result = json.loads(text.strip().splitlines()[-1])
  result.update(process_seconds=seconds, peak_mib=peak)
  return result


def _bb_run_name():
  return FLAGS.run.replace("mbt2018-", "mbt2018_bb-", 1)


def measure_in_process(kind, image):
  """One measurement in this process; returns a JSON-able dict."""
  from tfc_inference.inference import bbvi  # pylint: disable=import-outside-toplevel
  from tfc_inference.coding import codec  # pylint: disable=import-outside-toplevel
  from tfc_inference.models import checkpoints  # pylint: disable=import-outside-toplevel
  from tfc_inference.inference import iterative  # pylint: disable=import-outside-toplevel

  run = _bb_run_name() if kind == "bb_sga" else FLAGS.run
  model, config, run_name = checkpoints.load_run(run, FLAGS.checkpoint_dir)
  x = codec.to_batch(image)
  shape = image.shape[:2]
  megapixels = shape[0] * shape[1] / 1e6

  if kind == "amortized":
    def encode():
      y_hat, z_hat = codec.amortized_latents(model, x)
      return codec.encode_range_coded(model, run_name, config["model"], image,
                                      y_hat, z_hat)

    def decode(data):
      from tfc_inference.coding import file_format  # pylint: disable=import-outside-toplevel
      return codec.range_coded_decode_fn(
          model, file_format.CompressedFile.from_bytes(data))

    data = encode()  # warm-up: traces the tf.functions
    decode(data)
    encode_times, decode_times = [], []
    for _ in range(FLAGS.repeats):
      start = time.time()
      data = encode()
      encode_times.append(time.time() - start)
      start = time.time()
      decode(data)
      decode_times.append(time.time() - start)
    return dict(kind=kind, megapixels=megapixels,
                encode_seconds=float(np.median(encode_times)),
                decode_seconds=float(np.median(decode_times)),
                bpp=len(data) * 8 / (shape[0] * shape[1]))

  # Iterative: per-iteration cost from the progress callback's clock, from
  # iteration 1 on (iteration 0 traces the tf.functions). It includes the
  # true-loss evaluation every eval_every iterations, as users run it.
  marks = []
  record = lambda p: marks.append((p["iteration"], p["elapsed"]))  # noqa: E731
  iterations = FLAGS.iterations + 1
  if kind == "bb_sga":
    inferer = bbvi.BitsBackInference(
        model, bbvi.BitsBackConfig(iterations=iterations,
                                   compute_dtype=FLAGS.compute_dtype), record, 1)
  else:
    inferer = iterative.IterativeInference(
        model, iterative.InferenceConfig(method=kind, iterations=iterations,
                                         compute_dtype=FLAGS.compute_dtype),
        record, 1)
  inferer.run(x, shape)
  (first, warmup), (last, end) = marks[1], marks[-1]
  per_iteration = (end - warmup) / (last - first)
  return dict(kind=kind, megapixels=megapixels, warmup_seconds=warmup,
              iterations=FLAGS.iterations, seconds_per_iteration=per_iteration,
              seconds_per_iteration_per_mp=per_iteration / megapixels)


def time_bits_back_decode(png, tmp, checkpoint_args):
  """Writes a bb_no_sga file (reproducible BBVI, --bits_back_decode_its) and
  times its cold `decompress`, which repeats the BBVI."""
  examples = os.path.join(ROOT, "examples")
  tfci = os.path.join(tmp, "bits_back.tfci")
  run_process([sys.executable, os.path.join(examples, "bb_no_sga.py"), "compress",
               _bb_run_name(), png, tfci, "--noverbose",
               "--bbvi_its", str(FLAGS.bits_back_decode_its)] + checkpoint_args)
  seconds, peak, _ = run_process(
      [sys.executable, os.path.join(examples, "mbt2018_bb.py"), "decompress",
       tfci, os.path.join(tmp, "bits_back.png"), "--noverbose"] + checkpoint_args)
  return dict(bbvi_its=FLAGS.bits_back_decode_its, decompress_seconds=seconds,
              decompress_peak_mib=peak)


def load_image():
  from tfc_inference.util import image_io  # pylint: disable=import-outside-toplevel
  from tfc_inference.util import synthetic  # pylint: disable=import-outside-toplevel
  if FLAGS.image:
    return image_io.read_image(FLAGS.image), os.path.basename(FLAGS.image)
  height, width = (int(v) for v in FLAGS.size.lower().split("x"))
  return synthetic.test_image(height, width, seed=0), f"synthetic {FLAGS.size}"


def main(argv):
  del argv
  if FLAGS.measure:
    image = np.load(FLAGS.image_npy)
    print(json.dumps(measure_in_process(FLAGS.measure, image)))
    return
  from tfc_inference.models import checkpoints  # pylint: disable=import-outside-toplevel
  image, image_name = load_image()
  family = checkpoints.read_config(
      checkpoints.run_dir(FLAGS.run, FLAGS.checkpoint_dir))["model"]
  load_before = os.getloadavg()[0]
  with tempfile.TemporaryDirectory() as tmp:
    npy = os.path.join(tmp, "image.npy")
    png = os.path.join(tmp, "image.png")
    np.save(npy, image)
    from tfc_inference.util import image_io  # pylint: disable=import-outside-toplevel
    image_io.write_png(png, image)
    checkpoint_args = (["--checkpoint_dir", FLAGS.checkpoint_dir]
                       if FLAGS.checkpoint_dir else [])
    binary = os.path.join(ROOT, "examples", f"{family}.py")
    tfci = os.path.join(tmp, "image.tfci")
    cold_compress, cold_compress_peak, _ = run_process(
        [sys.executable, binary, "compress", FLAGS.run, png, tfci, "--noverbose"]
        + checkpoint_args)
    cold_decompress, cold_decompress_peak, _ = run_process(
        [sys.executable, binary, "decompress", tfci, os.path.join(tmp, "out.png"),
         "--noverbose"] + checkpoint_args)
    # The reference of the cold-start goal: importing tfc alone.
    tfc_import, _, _ = run_process(
        [sys.executable, "-c", "import tensorflow_compression"])
    print(f"cold start: compress {cold_compress:.1f} s "
          f"({cold_compress_peak:.0f} MiB), decompress {cold_decompress:.1f} s "
          f"({cold_decompress_peak:.0f} MiB); import tensorflow_compression "
          f"alone {tfc_import:.1f} s", flush=True)
    bits_back_decode = None
    if FLAGS.bits_back_decode_its:
      bits_back_decode = time_bits_back_decode(png, tmp, checkpoint_args)
      print(f"bits-back decode ({FLAGS.bits_back_decode_its} BBVI its), cold: "
            f"{bits_back_decode['decompress_seconds']:.1f} s", flush=True)
    amortized = measure_child("amortized", npy)
    print(f"amortized: encode {amortized['encode_seconds']:.3f} s, decode "
          f"{amortized['decode_seconds']:.3f} s per image "
          f"({amortized['peak_mib']:.0f} MiB)", flush=True)
    iterative = {}
    for method in FLAGS.methods:
      result = measure_child(method, npy)
      full = result["seconds_per_iteration"] * FLAGS.full_iterations
      result.update(full_iterations=FLAGS.full_iterations, full_seconds=full,
                    slowdown=full / amortized["encode_seconds"])
      iterative[method] = result
      print(f"{method}: {result['seconds_per_iteration']:.3f} s/it "
            f"({result['seconds_per_iteration_per_mp']:.3f} s/it/MP), "
            f"{FLAGS.full_iterations} its = {full / 60:.1f} min = "
            f"{result['slowdown']:.0f}x amortized ({result['peak_mib']:.0f} MiB)",
            flush=True)
  summary = dict(
      run=FLAGS.run, image=image_name, compute_dtype=FLAGS.compute_dtype, height=image.shape[0], width=image.shape[1],
      cpus=os.cpu_count(), load_average_before=load_before,
      load_average_after=os.getloadavg()[0],
      cold_start=dict(compress_seconds=cold_compress,
                      compress_peak_mib=cold_compress_peak,
                      decompress_seconds=cold_decompress,
                      decompress_peak_mib=cold_decompress_peak,
                      import_tfc_seconds=tfc_import),
      bits_back_decode=bits_back_decode,
      amortized=amortized, iterative=iterative)
  from tfc_inference.evaluation import runner  # pylint: disable=import-outside-toplevel
  runner.write_json(os.path.abspath(FLAGS.output), summary)
  print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
  app.run(main)
