//! Password checking: a configured plain password (compared in constant time) or an argon2 hash.

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use subtle::ConstantTimeEq;

/// How a login password is checked.
pub enum PasswordCheck {
    /// An argon2 PHC string (`$argon2id$...`).
    Hash(String),
    /// A plain password, compared in constant time.
    Plain(Vec<u8>),
}

impl std::fmt::Debug for PasswordCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.write_str(match self {
            PasswordCheck::Hash(_) => "PasswordCheck::Hash(..)",
            PasswordCheck::Plain(_) => "PasswordCheck::Plain(..)",
        })
    }
}

impl PasswordCheck {
    /// Chooses the check from the configured value: `$argon2...` is a hash, anything else plain.
    pub fn from_config(configured: &str) -> Result<Self, String> {
        if configured.starts_with("$argon2") {
            let hash =
                PasswordHash::new(configured).map_err(|e| format!("the configured argon2 hash is malformed: {e}"))?;
            if hash.hash.is_none() || hash.salt.is_none() {
                return Err("the configured argon2 hash has no salt or hash part".into());
            }
            Ok(PasswordCheck::Hash(configured.to_owned()))
        } else {
            Ok(PasswordCheck::Plain(configured.as_bytes().to_vec()))
        }
    }

    /// True when `attempt` is the password.
    pub fn verify(&self, attempt: &str) -> bool {
        match self {
            PasswordCheck::Plain(expected) => expected.as_slice().ct_eq(attempt.as_bytes()).into(),
            PasswordCheck::Hash(phc) => PasswordHash::new(phc)
                .map(|hash| Argon2::default().verify_password(attempt.as_bytes(), &hash).is_ok())
                .unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordHasher;
    use argon2::password_hash::SaltString;

    #[test]
    fn plain_password_matches_only_itself() {
        let check = PasswordCheck::from_config("hunter2").unwrap();
        assert!(check.verify("hunter2"));
        assert!(!check.verify("hunter3"));
        assert!(!check.verify("hunter"));
        assert!(!check.verify(""));
    }

    #[test]
    fn argon2_hash_is_verified() {
        let salt = SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").unwrap();
        let phc = Argon2::default().hash_password(b"correct horse", &salt).unwrap().to_string();
        let check = PasswordCheck::from_config(&phc).unwrap();
        assert!(check.verify("correct horse"));
        assert!(!check.verify("wrong horse"));
    }

    #[test]
    fn malformed_hash_is_a_config_error() {
        assert!(PasswordCheck::from_config("$argon2id$garbage").is_err());
    }
}
