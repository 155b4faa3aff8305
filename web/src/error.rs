//! The page's one error type. Every job reports failure as a [`PageError`]; the component
//! shows it once, in the status line (a panel may repeat it beside the control that failed).

use foldspace::align::model::AlignError;
use foldspace::align::query::QueryError;
use foldspace::align::search::BankError;
use foldspace::compute::ComputeError;
use foldspace::export::ExportError;
use foldspace::score::embed::EmbedError;
use foldspace::structure::ReadError;
use foldspace::structure::remote::IdError;
use foldspace::text::TextError;

use crate::browser::BrowserError;

/// What went wrong on the page, in words.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// A browser call (fetch, file read, download, canvas) failed.
    #[error(transparent)]
    Browser(#[from] BrowserError),
    /// A file the page fetches is not on the site.
    #[error("{0} was not found on this site")]
    Missing(String),
    /// A download does not match its published SHA-256.
    #[error(
        "{url} does not match its checksum (SHA-256 {actual}, expected {expected}): a damaged or stale download"
    )]
    Checksum {
        url: String,
        actual: String,
        expected: String,
    },
    /// The file could not be read as a structure.
    #[error(transparent)]
    Structure(#[from] ReadError),
    /// A structure identifier the archives do not know, or their answer.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The device failed (GPU buffers, shaders).
    #[error(transparent)]
    Compute(#[from] ComputeError),
    /// The score model could not load or run.
    #[error(transparent)]
    Model(#[from] EmbedError),
    /// A score network failed to run, in its words (it may have run in the model worker, whence
    /// errors come as text: `crate::model`).
    #[error("{0}")]
    Network(String),
    /// A model run the page dropped (`crate::model::Runs::cancel`): nothing to tell the user.
    #[error("the model run was dropped")]
    Cancelled,
    /// The alignment model, its query path or the bank.
    #[error(transparent)]
    Align(#[from] AlignError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Bank(#[from] BankError),
    /// The text model.
    #[error(transparent)]
    Text(#[from] TextError),
    /// An export could not be built.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// What the page itself refuses (no chain yet, a file over the limit, …).
    #[error("{0}")]
    Refused(String),
    /// An error with what the page was doing when it happened.
    #[error("{what}: {source}")]
    While {
        what: String,
        #[source]
        source: Box<PageError>,
    },
}

impl PageError {
    /// The page declines for a reason of its own.
    pub fn refused(why: impl Into<String>) -> Self {
        Self::Refused(why.into())
    }

    /// Whether this is a run the page dropped ([`PageError::Cancelled`]), however wrapped.
    pub fn is_cancelled(&self) -> bool {
        match self {
            Self::Cancelled => true,
            Self::While { source, .. } => source.is_cancelled(),
            _ => false,
        }
    }

    /// This error, said to have happened while doing `what`.
    pub fn during(self, what: impl Into<String>) -> Self {
        Self::While {
            what: what.into(),
            source: Box::new(self),
        }
    }
}

/// `Result` with the page's error.
pub type PageResult<T> = Result<T, PageError>;
