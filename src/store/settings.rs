//! Settings every replica shares through the database (`server_settings`).

use super::connection::{Connection, Statement};
use crate::error::{Error, Result};

/// Stores `$1` as the page-token secret unless a replica already has.
const OFFER_PAGE_TOKEN_SECRET: &str = "\
    INSERT INTO server_settings (key, value) VALUES ('page_token_secret', $1) \
    ON CONFLICT (key) DO NOTHING";

const PAGE_TOKEN_SECRET: &str = "SELECT value FROM server_settings WHERE key = 'page_token_secret'";

/// The secret that seals page tokens: created by the first replica to ask,
/// then shared by all. Commits `conn`.
pub(super) async fn page_token_secret(mut conn: Box<dyn Connection>) -> Result<Vec<u8>> {
    let fresh = hex::encode(rand::random::<[u8; 32]>());
    let offer = Statement::new(OFFER_PAGE_TOKEN_SECRET).text(fresh.as_str());
    conn.run(offer, "store page token secret").await?;
    let secret = conn
        .texts(Statement::new(PAGE_TOKEN_SECRET), "read page token secret")
        .await?
        .pop()
        .ok_or_else(|| Error::internal("the page token secret vanished"))?;
    conn.commit().await?;
    Ok(secret.into_bytes())
}
