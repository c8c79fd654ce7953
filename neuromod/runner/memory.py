"""Will a run fit? A training step's peak memory, estimated from the shapes before anything large is
allocated, against what the device has free. A size that cannot fit is refused with one line (the
estimate, what is available, the keys to lower) instead of an out-of-memory kill or an allocator traceback.

The estimate counts what a training step keeps for its backward pass, float32:

- networks of modulated neurons: per trial step and sequence (B trials x N neurons) the modulator's
  recurrence keeps its gates, cells, ``tanh`` of the cells and augmented states (7H + F + 1 values), plus
  its inputs, raw parameters, the parameters, drive and rate with their intermediates; without a modulator
  only the latter;
- other networks (the lstm / rnn controls): what one more trial adds to the tensors autograd saves during a
  forward pass, measured (``torch.autograd.graph.saved_tensors_hooks``), twice (the backward pass's
  gradients of the same size), times the batch size;

plus the weights with their gradients and Adam's two moments, and the batch itself. Evaluation runs without
gradients over ``training.batch_size`` trials at a time (:meth:`~neuromod.training.Trainer.evaluate`): it
keeps the network's output on the whole evaluation set and one chunk's pass, so
``training.eval_batch_size`` adds only the kept output. It is an estimate: tests check
it against measured peaks within a factor of 3.

Which of the two ways, and the counts, come from the network itself
(:meth:`~neuromod.models.protocol.AnalysedNetwork.memory_per_step`), so this module knows no network class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuromod.models.protocol import require
from neuromod.validation import ConfigError

GIB = 1024**3
#: Share of the free memory a run may plan to use.
HEADROOM = 0.9


@dataclass
class MemoryEstimate:
    train_bytes: int
    eval_bytes: int
    n_steps: int

    @property
    def peak_bytes(self) -> int:
        return max(self.train_bytes, self.eval_bytes)


def _saved_bytes(model: torch.nn.Module, inputs: torch.Tensor) -> int:
    """Bytes autograd saves for a forward pass over ``inputs [T, B, D]`` (each storage counted once)."""
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(inputs).outputs.sum()
    return sum(seen.values())


def _saved_per_trial(model: torch.nn.Module, one: torch.Tensor) -> int:
    """What one more trial adds to the saved tensors (two trials minus one: the weights, saved whatever
    the batch size, drop out)."""
    return max(_saved_bytes(model, one.expand(-1, 2, -1)) - _saved_bytes(model, one), 0)


def estimate(model: torch.nn.Module, task, batch_size: int, eval_batch_size: int) -> MemoryEstimate:
    """The peak memory of a training step and of an evaluation, from the longest training trial."""
    longest = task.sample(1, torch.Generator().manual_seed(0), torch.tensor([int(task.max_delay)]))
    T, D, K = longest.n_steps, task.input_size, task.output_size
    weights = sum(p.numel() for p in model.parameters()) * 4 * 4  # weights, gradients, Adam's moments
    batch = T * (D + K + 2) * 4  # inputs, targets, loss weights per trial
    chunk = min(batch_size, eval_batch_size)  # trials per evaluation pass
    per_step = require(model, "the memory estimate").memory_per_step()
    kept = T * per_step.kept * 4 * eval_batch_size
    if per_step.train is not None and per_step.passing is not None:
        train = T * batch_size * per_step.train * 4
        passing = T * chunk * per_step.passing * 4
    else:
        was_training = model.training
        model.train()
        parameters = next(model.parameters())
        one = longest.inputs.to(device=parameters.device, dtype=parameters.dtype)
        saved = _saved_per_trial(model, one)
        # backward allocates gradients the size of what was saved
        train = 2 * saved * batch_size
        model.train(was_training)
        passing = saved * chunk  # a pass without gradients keeps no more than it would save
    return MemoryEstimate(
        train_bytes=int(weights + train + batch * batch_size),
        eval_bytes=int(weights + kept + passing + batch * eval_batch_size),
        n_steps=T,
    )


def available_bytes(device: torch.device) -> int | None:
    """Free memory of ``device``: CUDA's free memory, or the CPU's available memory (the cgroup's limit
    when lower). None when it cannot be read."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    available = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        return None
    limit = _cgroup_room()
    if limit is not None and available is not None:
        available = min(available, limit)
    return available


def _cgroup_room() -> int | None:
    try:
        with open("/sys/fs/cgroup/memory.max") as handle:
            limit = handle.read().strip()
        with open("/sys/fs/cgroup/memory.current") as handle:
            used = int(handle.read().strip())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(int(limit) - used, 0)


def refusal(
    estimate: MemoryEstimate, available: int | None, keys: list[str], device: torch.device
) -> str | None:
    """One line if the run cannot fit (None if it can or nothing is known of the free memory)."""
    if available is None or estimate.peak_bytes <= HEADROOM * available:
        return None
    what = "a training step" if estimate.train_bytes >= estimate.eval_bytes else "an evaluation"
    return (
        f"this run does not fit: {what} needs about {estimate.peak_bytes / GIB:.3g} GiB (estimated for "
        f"trials of {estimate.n_steps} steps), {available / GIB:.3g} GiB is free on {device}; lower "
        f"{', '.join(keys)}"
    )


def keys_to_lower(cfg, is_eval: bool) -> list[str]:
    """The settings that set the size, as this config names them."""
    keys = ["training.eval_batch_size"] if is_eval else ["training.batch_size"]
    for key in ("architecture.n_neurons", "architecture.hidden_size"):
        section, _, name = key.partition(".")
        if cfg.get(section) is not None and cfg[section].get(name) is not None:
            keys.append(key)
    for key in ("task.max_delay", "task.delays", "task.delay"):
        if cfg.task.get(key.partition(".")[2]) is not None:
            keys.append(key)
            break
    return keys


def check_memory(cfg, task, model: torch.nn.Module, device: torch.device) -> MemoryEstimate:
    """A ConfigError (one line) when the run's estimated peak does not fit in the device's free memory."""
    batch_size, eval_batch_size = int(cfg.training.batch_size), int(cfg.training.eval_batch_size)
    found = estimate(model, task, batch_size, eval_batch_size)
    keys = keys_to_lower(cfg, is_eval=found.eval_bytes > found.train_bytes)
    message = refusal(found, available_bytes(device), keys, device)
    if message is not None:
        raise ConfigError(message)
    return found
