"""The base data loader: seeded, epoch-aware sampling for single-process and distributed runs."""
import itertools
import random
import signal

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
)


def seed_worker(worker_id: int) -> None:
    """Seed numpy's and Python's global generators from the torch seed of this worker.

    Augmentation draws from its own per-item generator; this protects any library code that falls
    back on the global ones. OpenCV runs sequentially in a worker: the workers are the parallelism.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    # 0 turns OpenCV's threading off. setNumThreads(1) instead resizes the thread pool inherited
    # through fork, whose threads do not exist in the child: it hung about one fork in three here.
    cv2.setNumThreads(0)
    # Ctrl-C and SIGTERM reach the whole process group. The main process answers them by saving a
    # checkpoint and then shuts its workers down, so the workers must not die first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def only_item(batch: list[dict]) -> dict:
    """The collate function of evaluation loaders: the one item of a batch of one."""
    (item,) = batch
    return item


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed mixing a run seed and an epoch, so that epoch e's order does not depend on
    how many epochs this process has already drawn (a resumed run sees the same orders)."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


class ShardSampler(Sampler[int]):
    """Items rank, rank + world_size, ... in order: every item on exactly one process.

    For evaluation, where DistributedSampler's padding would score some tiles twice; shards then
    differ in length by at most one, which is safe as long as evaluation runs no per-batch
    collective (the predictor runs the unwrapped model).
    """

    def __init__(self, dataset: Dataset, rank: int, world_size: int) -> None:
        self.indices = range(rank, len(dataset), world_size)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class ResumableSampler(Sampler[int]):
    """Another sampler's indices without the first `skip` of them: an epoch resumed mid-way
    draws the same order and goes on where it stopped, without loading what was done."""

    def __init__(self, sampler: Sampler[int]) -> None:
        self.sampler = sampler
        self.skip = 0

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)


class BaseDataLoader(DataLoader):
    """A DataLoader whose sampling is reproducible from `seed` and selectable per epoch.

    Under `torch.distributed` each process reads its own shard: training through a
    DistributedSampler (equal shards, as DDP needs the same number of steps everywhere),
    evaluation (`training=False`) through a ShardSampler (each item exactly once). Otherwise a
    RandomSampler (shuffle) or SequentialSampler. Call `set_epoch(epoch)` before each epoch: it
    reseeds the order and tells the dataset, whose augmentation depends on the epoch;
    `set_epoch(epoch, skip_batches=k)` resumes the epoch after its first k batches.
    Evaluation loaders (batch size 1: tiles differ in size) yield the dataset's items themselves,
    without a batch dimension.
    """

    def __init__(self, dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int,
                 seed: int = 0, training: bool = True) -> None:
        self.seed = seed
        self.shuffle = shuffle
        self._order_generator = torch.Generator()
        distributed = dist.is_available() and dist.is_initialized()
        if distributed and training:
            sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed)
        elif distributed:
            sampler = ShardSampler(dataset, dist.get_rank(), dist.get_world_size())
        elif shuffle:
            sampler = RandomSampler(dataset, generator=self._order_generator)
        else:
            sampler = SequentialSampler(dataset)
        if not training and batch_size != 1:
            raise ValueError(f"batch_size: an evaluation loader reads whole tiles one at a time, "
                             f"got {batch_size}")
        self._resumable = ResumableSampler(sampler)
        super().__init__(
            dataset,
            batch_size=batch_size,
            collate_fn=None if training else only_item,
            sampler=self._resumable,
            num_workers=num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=num_workers > 0,
            worker_init_fn=seed_worker,
            generator=torch.Generator().manual_seed(seed),
        )
        self.set_epoch(0)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Select epoch `epoch`'s sample order and augmentation; leave out its first
        `skip_batches` batches (an epoch resumed where it was interrupted)."""
        self._order_generator.manual_seed(epoch_seed(self.seed, epoch))
        self._resumable.skip = skip_batches * self.batch_size
        if isinstance(self._resumable.sampler, DistributedSampler):
            self._resumable.sampler.set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
