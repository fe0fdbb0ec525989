//! Where a run's micro-batches come from: a seeded order over a random-access dataset or a
//! restartable stream, read on a thread of its own one micro-batch ahead of the step, so the
//! step does not wait for decoding and tokenising. The loader reads in exactly the order a
//! synchronous loop would, and every micro-batch comes with the data position after it, which
//! the trainer takes over when it uses the batch (that is what a checkpoint records).

use std::sync::mpsc::{Receiver, sync_channel};

use diffclip_data::datasets::ClipDataset;
use diffclip_data::{BadSamplePolicy, ClipItem, DataError};

use crate::{TrainError, epoch_order};

/// The entries of one epoch of a streaming source, good or bad, in a fixed order.
pub type SampleStream<'a> = Box<dyn Iterator<Item = Result<ClipItem, DataError>> + 'a>;

/// A streaming training source (e.g. WebDataset shards, see [`crate::WdsStream`]): every epoch
/// is a fixed (seeded) sequence of samples that can be restarted at any position, which is how
/// [`Trainer::fit_stream`](crate::Trainer::fit_stream) resumes: the checkpoint records how many
/// entries of the current epoch were consumed, and a resumed run reopens the epoch past them.
/// `Sync`, because the trainer reads it on its loader thread.
pub trait ClipStream: Sync {
    /// The entries of `epoch` after the first `skip`. Every position yields one entry, `Ok`
    /// (a sample) or `Err` (a bad sample, counted as skipped); the same `epoch` must always give
    /// the same sequence, and passing over the first `skip` entries should be cheap (no decoding).
    fn open(&self, epoch: u64, skip: usize) -> Result<SampleStream<'_>, TrainError>;
}

/// The position in the data after some micro-batch: what the run's state takes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub epoch: u64,
    /// Entries of the epoch consumed (good or bad).
    pub position: usize,
    /// Bad samples skipped since the run began (over all resumes).
    pub skipped: usize,
}

/// One micro-batch and the position after it, or why there is none.
pub(crate) type Loaded = Result<(Vec<ClipItem>, Cursor), TrainError>;

/// What is read.
pub(crate) enum Source<'a> {
    Map { data: &'a dyn ClipDataset },
    Stream { data: &'a dyn ClipStream },
}

/// How micro-batches are cut from a [`Source`].
pub(crate) struct Feed<'a> {
    pub source: Source<'a>,
    pub cursor: Cursor,
    pub batch_size: usize,
    pub seed: u64,
    pub policy: BadSamplePolicy,
    /// Decoding threads (0: one per core).
    pub workers: usize,
}

/// The loader thread's own state: the epoch's order or the open stream.
#[derive(Default)]
struct Reading<'a> {
    order: Option<Vec<usize>>,
    stream: Option<SampleStream<'a>>,
    /// Good samples seen since the stream was opened, and whether it was opened at position 0.
    good: usize,
    fresh: bool,
}

/// Run `train` with a receiver of micro-batches that a scoped thread reads from `feed` one
/// ahead; micro-batch `i` belongs to step `first_step + i / accum_steps + 1` (for messages).
/// The loader stops after an error or when `train` returns (dropping the receiver).
pub(crate) fn prefetched<R>(feed: Feed<'_>, first_step: u64, accum_steps: usize, train: impl FnOnce(Receiver<Loaded>) -> R) -> R {
    let (tx, rx) = sync_channel::<Loaded>(1);
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut feed = feed;
            let mut reading = Reading::default();
            for i in 0u64.. {
                let loaded = feed.next(&mut reading, first_step + i / accum_steps.max(1) as u64 + 1);
                let failed = loaded.is_err();
                if tx.send(loaded).is_err() || failed {
                    return;
                }
            }
        });
        train(rx)
    })
}

impl<'a> Feed<'a> {
    /// The next micro-batch (for `step`), skipping and counting samples that fail.
    fn next(&mut self, reading: &mut Reading<'a>, step: u64) -> Loaded {
        let items = match self.source {
            Source::Map { data } => self.next_map(data, reading, step)?,
            Source::Stream { data } => self.next_stream(data, reading, step)?,
        };
        Ok((items, self.cursor))
    }

    /// The next micro-batch in the seeded order of the epoch.
    fn next_map(&mut self, data: &'a dyn ClipDataset, reading: &mut Reading<'a>, step: u64) -> Result<Vec<ClipItem>, TrainError> {
        let mut items = Vec::with_capacity(self.batch_size);
        let mut last_error = String::new();
        let c = &mut self.cursor;
        let order = reading.order.get_or_insert_with(|| epoch_order(data.num_items(), self.seed, c.epoch));
        // Whether this call read the current epoch from its start: only a whole epoch of bad
        // samples is an empty batch, not the bad tail of one.
        let mut from_start = c.position == 0;
        while items.len() < self.batch_size {
            if c.position >= order.len() {
                from_start = true;
                c.epoch += 1;
                c.position = 0;
                *order = epoch_order(data.num_items(), self.seed, c.epoch);
                data.set_epoch(c.epoch);
            }
            let want = (self.batch_size - items.len()).min(order.len() - c.position);
            let idx = &order[c.position..c.position + want];
            c.position += want;
            for r in par_map(idx, self.workers, |&i| data.get_item(i)) {
                match r {
                    Ok(item) => items.push(item),
                    Err(e) if self.policy == BadSamplePolicy::Fail => return Err(TrainError::Data(e)),
                    Err(e) => {
                        c.skipped += 1;
                        last_error = e.to_string();
                    }
                }
            }
            if items.is_empty() && from_start && c.position >= order.len() {
                return Err(TrainError::EmptyBatch { step, last_error });
            }
        }
        Ok(items)
    }

    /// The next micro-batch of a stream; at the end of an epoch the next one is opened.
    fn next_stream(&mut self, data: &'a dyn ClipStream, reading: &mut Reading<'a>, step: u64) -> Result<Vec<ClipItem>, TrainError> {
        let mut items = Vec::with_capacity(self.batch_size);
        let mut last_error = String::new();
        let c = &mut self.cursor;
        while items.len() < self.batch_size {
            if reading.stream.is_none() {
                reading.good = 0;
                reading.fresh = c.position == 0;
                reading.stream = Some(data.open(c.epoch, c.position)?);
            }
            let stream = reading.stream.as_mut().expect("opened above");
            match stream.next() {
                Some(Ok(item)) => {
                    c.position += 1;
                    reading.good += 1;
                    items.push(item);
                }
                Some(Err(e)) if self.policy == BadSamplePolicy::Fail => return Err(TrainError::Data(e)),
                Some(Err(e)) => {
                    c.position += 1;
                    c.skipped += 1;
                    last_error = e.to_string();
                }
                None => {
                    // A whole epoch without a good sample would loop forever.
                    if reading.fresh && reading.good == 0 {
                        if c.position == 0 {
                            return Err(TrainError::UnusableData(format!("epoch {} of the training stream has no samples", c.epoch)));
                        }
                        return Err(TrainError::EmptyBatch { step, last_error });
                    }
                    // Fewer good samples than a batch: every batch would hold them repeated.
                    if reading.fresh && reading.good < self.batch_size {
                        return Err(TrainError::UnusableData(format!(
                            "epoch {} of the training stream has {} usable samples, fewer than one batch of {}",
                            c.epoch, reading.good, self.batch_size
                        )));
                    }
                    c.epoch += 1;
                    c.position = 0;
                    reading.stream = None;
                }
            }
        }
        Ok(items)
    }
}

/// Load samples on `workers` scoped threads (0: one per core); decoding dominates for
/// file-backed datasets.
pub(crate) fn par_map<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let threads = if workers == 0 { cores } else { workers }.min(items.len().max(1));
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(chunk).map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>())).collect();
        handles.into_iter().flat_map(|h| h.join().expect("loader thread")).collect()
    })
}
