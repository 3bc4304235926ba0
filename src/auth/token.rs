//! HS256 JSON Web Tokens: issue and verify. No other algorithm is ever accepted.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};

use super::Role;
use crate::error::AppError;

/// The claims Mission Control puts in a token.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The account's id, for an account's token; absent for the bootstrap logins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// Clock difference tolerated between instances of a fleet, for `iat` and lifetimes.
const CLOCK_LEEWAY_SECS: i64 = 60;

/// Signs and verifies tokens with one secret.
#[derive(Clone)]
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the keys.
        f.debug_struct("TokenService").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl TokenService {
    /// A service signing with `secret`; tokens live for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        TokenService {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// Issues a token for `subject` with `role`, valid from `now` for the configured lifetime.
    pub fn issue(&self, subject: &str, role: Role, now: DateTime<Utc>) -> Result<(String, DateTime<Utc>), AppError> {
        self.issue_for(subject, role, None, now)
    }

    /// Like [`TokenService::issue`], for account `uid` when given.
    pub fn issue_for(
        &self,
        subject: &str,
        role: Role,
        uid: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), AppError> {
        let ttl = chrono::Duration::from_std(self.ttl).map_err(|e| AppError::Internal(format!("token ttl: {e}")))?;
        let expires = now + ttl;
        let claims = Claims {
            sub: subject.to_owned(),
            role,
            iat: now.timestamp(),
            exp: expires.timestamp(),
            jti: uuid::Uuid::new_v4().to_string(),
            uid: uid.map(str::to_owned),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AppError::Internal(format!("signing token: {e}")))?;
        Ok((token, expires))
    }

    /// Signs arbitrary claims; tests use it to make expired tokens.
    pub fn sign(&self, claims: &Claims) -> Result<String, AppError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| AppError::Internal(format!("signing token: {e}")))
    }

    /// Verifies signature, algorithm and expiry, and that the token was not issued in the future
    /// nor made to live longer than this server issues tokens for (each within `CLOCK_LEEWAY`).
    pub fn verify(&self, token: &str) -> Result<Claims, AppError> {
        let claims = self.decode(token)?;
        let now = Utc::now().timestamp();
        if claims.iat > now + CLOCK_LEEWAY_SECS {
            return Err(AppError::Unauthenticated("token is issued in the future".into()));
        }
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        if claims.exp.saturating_sub(claims.iat) > ttl.saturating_add(CLOCK_LEEWAY_SECS) {
            return Err(AppError::Unauthenticated("token lives longer than this server allows".into()));
        }
        Ok(claims)
    }

    fn decode(&self, token: &str) -> Result<Claims, AppError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map(|data| data.claims).map_err(|err| {
            let why = match err.kind() {
                ErrorKind::ExpiredSignature => "token expired",
                ErrorKind::InvalidSignature => "token signature is invalid",
                ErrorKind::InvalidAlgorithm => "token algorithm is not HS256",
                _ => "token is malformed",
            };
            AppError::Unauthenticated(why.into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn service() -> TokenService {
        TokenService::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(3600))
    }

    #[test]
    fn issued_token_verifies_with_its_claims() {
        let svc = service();
        let (token, exp) = svc.issue("alice", Role::Admin, Utc::now()).unwrap();
        let claims = svc.verify(&token).unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.role, Role::Admin);
        assert_eq!(claims.exp, exp.timestamp());
    }

    #[test]
    fn expired_token_is_refused() {
        let svc = service();
        let (token, _) = svc.issue("alice", Role::Admin, Utc::now() - chrono::Duration::hours(2)).unwrap();
        let err = svc.verify(&token).unwrap_err();
        assert_eq!(err.to_string(), "token expired");
    }

    #[test]
    fn tokens_from_the_future_or_living_too_long_are_refused() {
        let svc = service();
        let now = Utc::now().timestamp();
        let claims =
            |iat: i64, exp: i64| Claims { sub: "a".into(), role: Role::Admin, iat, exp, jti: "j".into(), uid: None };
        let ahead = svc.sign(&claims(now + 365 * 86_400, now + 366 * 86_400)).unwrap();
        assert_eq!(svc.verify(&ahead).unwrap_err().to_string(), "token is issued in the future");
        let forever = svc.sign(&claims(now, now + 50 * 365 * 86_400)).unwrap();
        assert_eq!(svc.verify(&forever).unwrap_err().to_string(), "token lives longer than this server allows");
        // Within the leeway: a clock a little ahead, a lifetime of exactly the TTL.
        assert!(svc.verify(&svc.sign(&claims(now + 30, now + 3600)).unwrap()).is_ok());
        assert!(svc.verify(&svc.sign(&claims(now, now + 3600)).unwrap()).is_ok());
    }

    #[test]
    fn other_secret_and_alg_none_are_refused() {
        let (token, _) = TokenService::new(b"another-secret-another-secret-xx", Duration::from_secs(60))
            .issue("mallory", Role::Admin, Utc::now())
            .unwrap();
        assert!(service().verify(&token).is_err());

        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let exp = Utc::now().timestamp() + 600;
        let payload =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"mallory","role":"admin","iat":0,"exp":{exp},"jti":"x"}}"#));
        assert!(service().verify(&format!("{header}.{payload}.")).is_err());
    }
}
