"""Where the binaries write, decided and checked before any model is loaded.

The rule for OUTPUT (documented in the README):
  * OUTPUT names a directory when it ends with `/` or is an existing directory;
    each image then becomes DIR/NAME + suffix, and DIR is created if missing.
  * Otherwise OUTPUT is the one output file; its directory must exist.
  * Several input images need a directory OUTPUT; without OUTPUT the files go
    into the current directory.
Existing files are never replaced without `overwrite`. Files are written to a
temporary file beside the target and renamed into place when complete, so an
interrupted or failed run leaves no partial output.
"""

import os
import tempfile


class OutputError(ValueError):
  """An output path that cannot be used; the message is one line."""


def names_directory(path):
  return path.endswith(("/", os.sep)) or os.path.isdir(path)


def check_file(path, overwrite, what="output"):
  """Raises OutputError unless `path` can be written as a new (or replaced) file."""
  if os.path.isdir(path):
    raise OutputError(f"{what} {path} is a directory; give a file name")
  if os.path.lexists(path) and not overwrite:
    raise OutputError(f"{what} {path} exists; pass --overwrite to replace it")
  directory = os.path.dirname(path) or "."
  if not os.path.isdir(directory):
    raise OutputError(f"{what} {path}: directory {directory} does not exist")
  if not os.access(directory, os.W_OK | os.X_OK):
    raise OutputError(f"{what} {path}: directory {directory} is not writable")


def make_directory(path, what="output directory"):
  """Creates directory `path` (and parents) if needed; OutputError if impossible."""
  if os.path.lexists(path) and not os.path.isdir(path):
    raise OutputError(f"{what} {path} exists and is not a directory")
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as error:
    raise OutputError(f"{what} {path}: cannot create it "
                      f"({error.strerror or error})") from None
  if not os.access(path, os.W_OK | os.X_OK):
    raise OutputError(f"{what} {path} is not writable")


def plan(names, output, suffix, overwrite):
  """One checked output path per input name (see the module docstring).

  Args:
    names: input image names (file stems), in order.
    output: OUTPUT as given on the command line, or None.
    suffix: extension of the written files, e.g. ".tfci".
    overwrite: whether existing files may be replaced.
  Returns:
    list of paths, one per name. Creates a directory OUTPUT if it is missing.
  """
  if output is not None and not names_directory(output):
    if len(names) > 1:
      raise OutputError(
          f"INPUT holds {len(names)} images but OUTPUT {output} names one file; "
          f"end it with '/' to write them into a directory")
    check_file(output, overwrite)
    return [output]
  directory = output if output is not None else "."
  make_directory(directory)
  paths = [os.path.join(directory, name + suffix) for name in names]
  seen = {}
  for name, path in zip(names, paths):
    if path in seen:
      raise OutputError(f"inputs {seen[path]!r} and {name!r} would both be "
                        f"written to {path}")
    seen[path] = name
    check_file(path, overwrite)
  return paths


def decoded_path(input_path, output, input_suffix, suffix=".png"):
  """Output of `decompress INPUT [OUTPUT]`: OUTPUT, DIR/STEM.png, or STEM.png."""
  stem = (input_path[:-len(input_suffix)] if input_path.endswith(input_suffix)
          else input_path)
  if output is None:
    return stem + suffix
  if names_directory(output):
    make_directory(output)
    return os.path.join(output, os.path.basename(stem) + suffix)
  return output


def replace_atomically(path, write_to):
  """Calls `write_to(temporary path)` beside `path`, then renames it to `path`.

  Readers (and concurrent writers) never see a half-written file; on failure the
  temporary file is removed and `path` is left as it was.
  """
  directory = os.path.dirname(path) or "."
  handle, tmp_path = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
  os.close(handle)
  try:
    write_to(tmp_path)
    os.chmod(tmp_path, 0o644)  # temporary files are private; outputs are not
    os.replace(tmp_path, path)
  except BaseException:
    if os.path.exists(tmp_path):
      os.remove(tmp_path)
    raise


def write_atomic(path, data, overwrite=True):
  """Writes bytes to `path` through a temporary file renamed into place."""
  check_file(path, overwrite)

  def write_to(tmp_path):
    with open(tmp_path, "wb") as f:
      f.write(data)

  replace_atomically(path, write_to)
