"""Distribution strategies of training (`tf.distribute`): one device, several, several hosts.

* `default`: TensorFlow's default strategy, one device (what training always did).
* `mirrored`: `tf.distribute.MirroredStrategy`, synchronous data parallelism over
  all local GPUs; without GPUs, over `cpu_replicas` logical CPU devices (for
  testing the distributed path, or to split a many-core host).
* `multi_worker`: `tf.distribute.MultiWorkerMirroredStrategy` over the hosts that
  the `TF_CONFIG` environment variable lists (each host runs the same command).

The global batch (`--batchsize`) is split evenly over the replicas, and each
replica's loss is divided by the number of replicas, so the summed gradients are
those of the mean loss over the global batch: the same as one device training on
the whole batch. Only the chief worker writes exports and summaries (see
`is_chief`); every worker must see the run directory at the same path.
"""

import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


class StrategyError(ValueError):
  """A strategy that cannot be set up as asked; the message is one line."""


def configure_cpu_replicas(count):
  """Splits the host CPU into `count` logical devices (before TF runs any op)."""
  cpus = tf.config.list_physical_devices("CPU")
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
  except RuntimeError:
    # Already configured by an earlier call with the same count is fine.
    if len(tf.config.list_logical_devices("CPU")) != count:
      raise StrategyError(
          "--cpu_replicas must be set before TensorFlow runs its first op") from None


def make_strategy(name="default", cpu_replicas=0):
  """The `tf.distribute.Strategy` called `name` (one of `STRATEGIES`).

  cpu_replicas: with `mirrored` on a host without GPUs, the number of logical CPU
    devices to mirror over (0 or 1: the one CPU device).
  """
  if name not in STRATEGIES:
    raise StrategyError(f"unknown strategy {name!r}; one of {', '.join(STRATEGIES)}")
  if cpu_replicas < 0:
    raise StrategyError(f"--cpu_replicas must be >= 0, got {cpu_replicas}")
  if cpu_replicas > 1 and name != "mirrored":
    raise StrategyError("--cpu_replicas needs --strategy mirrored")
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "multi_worker":
    if "TF_CONFIG" not in os.environ:
      raise StrategyError("--strategy multi_worker needs the TF_CONFIG environment "
                          "variable (the cluster and this worker's task)")
    try:
      json.loads(os.environ["TF_CONFIG"])
    except ValueError as error:
      raise StrategyError(f"TF_CONFIG is not JSON: {error}") from None
    return tf.distribute.MultiWorkerMirroredStrategy()
  if tf.config.list_physical_devices("GPU"):
    if cpu_replicas > 1:
      raise StrategyError("--cpu_replicas is for hosts without GPUs")
    return tf.distribute.MirroredStrategy()
  if cpu_replicas > 1:
    configure_cpu_replicas(cpu_replicas)
  devices = [device.name for device in tf.config.list_logical_devices("CPU")]
  return tf.distribute.MirroredStrategy(
      devices=devices, cross_device_ops=tf.distribute.ReductionToOneDevice())


def is_default(strategy):
  return strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy()


def task(strategy):
  """(task type, task index) of this worker; (None, 0) without a cluster."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return None, 0
  return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy):
  """Whether this worker writes exports, summaries and the resumable checkpoints:
  the `chief` task, or worker 0 of a cluster without one."""
  task_type, task_id = task(strategy)
  if task_type in (None, "chief"):
    return True
  cluster = strategy.cluster_resolver.cluster_spec().as_dict()
  return task_type == "worker" and task_id == 0 and "chief" not in cluster


def check_global_batch(strategy, batchsize):
  """Raises unless the global batch splits evenly over the replicas."""
  replicas = strategy.num_replicas_in_sync
  if batchsize % replicas:
    raise StrategyError(f"--batchsize {batchsize} does not split over {replicas} "
                        f"replicas; use a multiple of {replicas}")
