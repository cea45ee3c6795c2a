//! Admin authentication: password hashes, JWT access tokens (Marzban's
//! claims), and the extractor that turns a bearer token into an admin.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::store::{Admin, now};

/// argon2id for new hashes; bcrypt hashes (imported from Marzban) still verify.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("hashing password: {e}")))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    if hash.starts_with("$2") {
        return bcrypt::verify(password, hash).unwrap_or(false);
    }
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    access: String,
    iat: i64,
    exp: i64,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    lifetime_secs: i64,
}

impl JwtKeys {
    pub fn new(secret: &str, lifetime_minutes: i64) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            lifetime_secs: lifetime_minutes * 60,
        }
    }

    pub fn issue(&self, admin: &Admin) -> Result<String, ApiError> {
        self.issue_at(admin, now())
    }

    /// A token as if issued at `iat` (unix seconds).
    pub fn issue_at(&self, admin: &Admin, iat: i64) -> Result<String, ApiError> {
        let claims = Claims {
            sub: admin.username.clone(),
            access: if admin.is_sudo { "sudo" } else { "admin" }.into(),
            iat,
            exp: iat + self.lifetime_secs,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(e.into()))
    }

    fn verify(&self, token: &str) -> Option<Claims> {
        let validation = Validation::new(Algorithm::HS256);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()
            .map(|d| d.claims)
    }
}

/// The admin a request is made by.
pub struct CurrentAdmin(pub Admin);

impl CurrentAdmin {
    pub fn require_sudo(&self) -> Result<(), ApiError> {
        if self.0.is_sudo {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// Sudo admins reach every user; others only their own.
    pub fn may_manage(&self, owner_id: Option<i64>) -> bool {
        self.0.is_sudo || owner_id == Some(self.0.id)
    }
}

fn unauthorized() -> ApiError {
    ApiError::Unauthorized("Could not validate credentials".into())
}

impl FromRequestParts<AppState> for CurrentAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::Unauthorized("Not authenticated".into()))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(unauthorized)?;
        Ok(Self(admin_from_token(state, token).await?))
    }
}

/// The admin a bearer token stands for, if it is valid and not outdated.
pub async fn admin_from_token(state: &AppState, token: &str) -> Result<Admin, ApiError> {
    let claims = state.jwt.verify(token.trim()).ok_or_else(unauthorized)?;
    let admin = state
        .store
        .admin_for_auth(&claims.sub)
        .await?
        .ok_or_else(unauthorized)?;
    // A password change invalidates every token issued before it.
    if admin
        .password_reset_at
        .is_some_and(|reset| claims.iat < reset)
    {
        return Err(unauthorized());
    }
    Ok(admin)
}

/// A sudo admin. As an extractor it answers 401 or 403 before the body is
/// read, so a non-sudo admin learns nothing from validation errors.
pub struct SudoAdmin(pub Admin);

impl FromRequestParts<AppState> for SudoAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let admin = CurrentAdmin::from_request_parts(parts, state).await?;
        admin.require_sudo()?;
        Ok(Self(admin.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_and_bcrypt_hashes_verify() {
        let hash = hash_password("s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &hash));
        assert!(!verify_password("wrong", &hash));
        let marzban = bcrypt::hash("old", 4).unwrap();
        assert!(verify_password("old", &marzban));
        assert!(!verify_password("new", &marzban));
        assert!(!verify_password("x", "garbage"));
    }
}
