//! The compact models' flags shared by quickstart, reproduce and convert.

use diffclip::train::synthetic::CompactShape;

/// Width, depth and image size of the compact models, batch size, bootstrap resamples, backend.
#[derive(clap::Args, Debug)]
pub struct ShapeArgs {
    /// Width of both towers (4 heads each).
    #[arg(long, default_value_t = 96)]
    pub width: usize,
    /// Vision transformer blocks.
    #[arg(long, default_value_t = 4)]
    pub vision_layers: usize,
    /// Text transformer blocks.
    #[arg(long, default_value_t = 2)]
    pub text_layers: usize,
    /// Image side in pixels (patch size 8).
    #[arg(long, default_value_t = 64)]
    pub image_size: usize,
    /// Samples per training step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Bootstrap resamples over test samples for the intervals of the differences, 40 to
    /// 100,000 (fewer cannot place a 95 % interval's 2.5 % tails; more only takes time).
    #[arg(long, default_value_t = 2000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(40..=100_000))]
    pub bootstrap: usize,
    /// Backend: flex, ndarray, wgpu (as compiled in).
    #[arg(long, default_value = "flex")]
    pub backend: String,
    /// Write into an --output folder that already holds files (an earlier run's): files of the
    /// same names are replaced, others are left.
    #[arg(long)]
    pub overwrite: bool,
}

impl ShapeArgs {
    /// Creates `dir`, refusing one that holds files unless `--overwrite` was given: an earlier
    /// run's results are not silently replaced nor mixed with this run's.
    pub fn create_output(&self, dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
        diffclip::clip::files::create_output_dir(dir)?;
        let holds_files = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?.next().is_some();
        if holds_files && !self.overwrite {
            return Err(format!("{} already holds files (an earlier run?): choose another --output, or pass --overwrite to write over them", dir.display()).into());
        }
        Ok(())
    }
}

/// Fewest held-out samples the statistics over test samples accept.
#[allow(dead_code)] // quickstart trains one seed
pub const MIN_TEST_SIZE: usize = 20;

/// The seeds of the runs, and the synthetic set's seed and sizes (the same data for every run).
#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// Seeds, comma-separated: each run's initialisation and data order (convert: the
    /// fine-tuning order and the scratch model).
    #[arg(long, default_value = "0,1,2", value_delimiter = ',')]
    pub seeds: Vec<u64>,
    /// Seed of the synthetic images and captions.
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
    /// Training samples.
    #[arg(long, default_value_t = 20_000, value_parser = diffclip::cli::at_least_one)]
    pub train_size: usize,
    /// Held-out samples, at most a million (each is encoded by every run).
    #[arg(long, default_value_t = 1_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub test_size: usize,
}

impl SynthArgs {
    /// Each seed once (a repeated one would count the same run twice in every statistic),
    /// enough test samples for a bootstrap over them to mean anything, a training set of at
    /// least one `batch_size` whose epoch order fits in memory: refused before any folder is made.
    #[allow(dead_code)] // quickstart trains one seed
    pub fn check(&self, batch_size: usize) -> Result<(), String> {
        if self.train_size < batch_size {
            return Err(format!("--train-size {} is smaller than one batch (--batch-size {batch_size})", self.train_size));
        }
        // An epoch's order is a word per sample.
        let need = self.train_size as u128 * 8;
        if let Some(available) = diffclip::clip::ModelLimits::default().max_bytes.filter(|&a| need > a as u128) {
            let gib = |b: u128| b as f64 / (1u64 << 30) as f64;
            return Err(format!("--train-size {}: an epoch's order alone needs {:.1} GiB, more than the {:.1} GiB of memory available", self.train_size, gib(need), gib(available as u128)));
        }
        if self.test_size < MIN_TEST_SIZE {
            return Err(format!("--test-size {} is below {MIN_TEST_SIZE}: the bootstrap over test samples would resample a handful of values and call any difference clear", self.test_size));
        }
        match self.seeds.iter().enumerate().find(|(i, s)| self.seeds[..*i].contains(s)) {
            Some((_, s)) => Err(format!("--seeds lists {s} twice: a repeated seed repeats the same run")),
            None => Ok(()),
        }
    }
}

impl ShapeArgs {
    /// The model shape these flags describe.
    pub fn shape(&self) -> CompactShape {
        CompactShape { width: self.width, vision_layers: self.vision_layers, text_layers: self.text_layers, image_size: self.image_size }
    }
}
