//! The CSV/TSV column flags shared by the programs that read `csv:` data (train, embed).

use diffclip::data::datasets::CsvConfig;

/// Which columns of a `csv:PATH` file hold the image paths and captions, and its separator.
#[derive(clap::Args, Debug)]
pub struct CsvArgs {
    /// CSV/TSV column holding image paths (relative ones resolve against --csv-image-root).
    #[arg(long, default_value = "filepath")]
    pub csv_image_column: String,
    /// Folder that relative image paths resolve against (default: the CSV file's folder).
    #[arg(long)]
    pub csv_image_root: Option<std::path::PathBuf>,
    /// CSV/TSV column holding captions.
    #[arg(long, default_value = "title")]
    pub csv_caption_column: String,
    /// CSV field separator (one character, or 'tab'); default from the extension (.csv: ',', else tab).
    #[arg(long)]
    pub csv_separator: Option<String>,
}

impl CsvArgs {
    /// The reader's config these flags describe.
    pub fn config(&self) -> Result<CsvConfig, String> {
        let separator = self.csv_separator.as_deref().map(CsvConfig::parse_separator).transpose().map_err(|e| format!("--csv-separator: {e}"))?;
        Ok(CsvConfig { image_column: self.csv_image_column.clone(), caption_column: self.csv_caption_column.clone(), separator, image_root: self.csv_image_root.clone(), ..CsvConfig::default() })
    }
}
