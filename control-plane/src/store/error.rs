#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("database configuration: {0}")]
    Config(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Maps a unique-constraint violation to a conflict with `message`.
    pub(crate) fn unique(message: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Self {
        let message = message.into();
        move |e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict(message),
            _ => Self::Database(e),
        }
    }
}
