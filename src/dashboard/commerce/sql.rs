//! `Sql`: a query assembled from `&'static str` fragments and bound values only. The merchant lists build
//! their WHERE and ORDER BY clauses at runtime; taking nothing but string literals as SQL makes it a type
//! error for a query parameter to reach the query text other than as a bind parameter.

use std::fmt::Write;

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Arguments, Encode, FromRow, PgPool, Postgres, Type};

use crate::error::ApiError;

pub struct Sql {
    text: String,
    args: PgArguments,
    /// The first value that could not be encoded; reported when the query runs.
    bind_error: Option<sqlx::error::BoxDynError>,
}

impl Sql {
    pub fn new(fragment: &'static str) -> Self {
        Self {
            text: fragment.to_owned(),
            args: PgArguments::default(),
            bind_error: None,
        }
    }

    pub fn push(&mut self, fragment: &'static str) -> &mut Self {
        self.text.push_str(fragment);
        self
    }

    /// Appends a `$n` placeholder bound to `value`.
    pub fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: for<'q> Encode<'q, Postgres> + Type<Postgres>,
    {
        if let Err(error) = self.args.add(value) {
            self.bind_error.get_or_insert(error);
        }
        // Writing to a String cannot fail.
        let _ = write!(self.text, "${}", self.args.len());
        self
    }

    pub async fn fetch_all<R>(self, pool: &PgPool) -> Result<Vec<R>, ApiError>
    where
        R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        let (text, args) = self.finish()?;
        Ok(sqlx::query_as_with(sqlx::AssertSqlSafe(text), args)
            .fetch_all(pool)
            .await?)
    }

    pub async fn fetch_optional<R>(self, pool: &PgPool) -> Result<Option<R>, ApiError>
    where
        R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        let (text, args) = self.finish()?;
        Ok(sqlx::query_as_with(sqlx::AssertSqlSafe(text), args)
            .fetch_optional(pool)
            .await?)
    }

    fn finish(self) -> Result<(String, PgArguments), ApiError> {
        match self.bind_error {
            Some(error) => Err(ApiError::internal(format!(
                "encoding a query argument: {error}"
            ))),
            None => Ok((self.text, self.args)),
        }
    }
}
