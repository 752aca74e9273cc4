//! Encryption at rest: the data key that seals everything a manager writes.
//!
//! Why it is shaped so:
//! - One symmetric [`DataKey`] (XChaCha20-Poly1305) seals every record. The
//!   192-bit nonce is random per seal and stored in front of the ciphertext,
//!   so there is no nonce counter to persist or get wrong after a crash.
//! - Callers pass an AAD naming the record's place (tree + key), so a record
//!   copied to another place on disk fails authentication instead of being
//!   read back as something else.
//! - The data key never changes when the lock changes: only its wrapping
//!   (see [`keystore`]) does, so rotating the unlock key never re-encrypts
//!   the Raft log.
//! - Key bytes live in zeroizing containers and `Debug` never prints them.

mod keystore;

pub(crate) use keystore::write_atomic;
pub use keystore::{KeyStore, Lock, LockedStore, Opened, UnlockKey};

use std::path::PathBuf;

use chacha20poly1305::aead::{Aead, AeadInOut, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// Length of a key in bytes (256 bits).
pub const KEY_LEN: usize = 32;
/// Length of the random nonce stored in front of every sealed record.
pub const NONCE_LEN: usize = 24;
/// Length of the authentication tag at the end of every sealed record.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed record has beyond its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Errors of sealing, opening and key files. Messages name the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// A sealed record did not authenticate.
    #[error(
        "sealed data failed authentication: it is damaged, was moved, or was sealed with another key"
    )]
    Authentication,
    /// A sealed record is shorter than nonce + tag.
    #[error("sealed data is truncated ({len} bytes, at least {OVERHEAD} expected)")]
    Truncated {
        /// Length found.
        len: usize,
    },
    /// The unlock key given does not open the data key file.
    #[error(
        "the unlock key does not open {}: wrong unlock key (or the file is damaged)",
        path.display()
    )]
    WrongUnlockKey {
        /// The data key file.
        path: PathBuf,
    },
    /// The data key file does not exist: the store was never created.
    #[error("no data key at {}: the key store was never created here", path.display())]
    Missing {
        /// The data key file looked for.
        path: PathBuf,
    },
    /// A data key file already exists where a new store was to be created.
    #[error("a data key already exists at {}: refusing to overwrite it", path.display())]
    AlreadyExists {
        /// The existing data key file.
        path: PathBuf,
    },
    /// A key file is damaged or not a Shoal key file.
    #[error("{} is damaged or not a Shoal key file: {reason}", path.display())]
    Damaged {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a key file failed.
    #[error("{} {}: {source}", action, path.display())]
    Io {
        /// What was being done ("cannot read", "cannot write", ...).
        action: &'static str,
        /// The file or directory at fault.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `rotate_lock` was given a data key that is not the store's own.
    #[error("the data key given is not the one wrapped in {}", path.display())]
    KeyMismatch {
        /// The data key file.
        path: PathBuf,
    },
    /// An unlock key string could not be parsed.
    #[error("invalid unlock key: {0}")]
    BadUnlockKey(String),
}

/// The 256-bit key that seals all cluster data a manager writes to disk.
///
/// Cheap to clone; the key material is wiped from memory when dropped.
#[derive(Clone)]
pub struct DataKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    // Built once; zeroizes its own copy of the key on drop (crate feature).
    cipher: XChaCha20Poly1305,
}

impl DataKey {
    /// A fresh random data key from the system's secure RNG.
    ///
    /// # Panics
    /// Only if the operating system's random source fails, which Linux does
    /// not do once booted.
    pub fn generate() -> DataKey {
        DataKey::from_bytes(random_key())
    }

    /// The key from its raw bytes (as unwrapped from a key file).
    pub(crate) fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> DataKey {
        let cipher = XChaCha20Poly1305::new((&*bytes).into());
        DataKey { bytes, cipher }
    }

    /// The raw key bytes, for wrapping by a key-encryption key.
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// Seals `plaintext`, binding it to `aad` (which is authenticated, not
    /// stored). Output: `nonce || ciphertext || tag`.
    ///
    /// # Panics
    /// Only if the operating system's random source fails (see
    /// [`DataKey::generate`]).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        out.resize(NONCE_LEN, 0);
        out.extend_from_slice(plaintext);
        self.seal_in_place(&mut out, 0, aad);
        out
    }

    /// [`DataKey::seal`] where the plaintext already lies: `buf[at..]` is
    /// [`NONCE_LEN`] bytes of room, then the plaintext, and becomes what
    /// `seal` returns (the nonce in the room, the tag appended). For log
    /// entries and snapshot chunks, encoded straight into the buffer they
    /// are written from: sealing a copy cost two more copies and fresh
    /// pages for every byte.
    ///
    /// # Panics
    /// If `buf` is shorter than `at + NONCE_LEN`, or the operating
    /// system's random source fails.
    pub fn seal_in_place(&self, buf: &mut Vec<u8>, at: usize, aad: &[u8]) {
        let nonce = XNonce::generate();
        buf[at..at + NONCE_LEN].copy_from_slice(&nonce);
        let plaintext = &mut buf[at + NONCE_LEN..];
        // Encryption only fails for inputs longer than ChaCha20's 256 GiB
        // keystream, which nothing here can hold in memory.
        match self
            .cipher
            .encrypt_inout_detached(&nonce, aad, plaintext.into())
        {
            Ok(tag) => buf.extend_from_slice(&tag),
            Err(_) => unreachable!("XChaCha20-Poly1305 input beyond 256 GiB"),
        }
    }

    /// Opens what [`DataKey::seal`] made with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < OVERHEAD {
            return Err(SealError::Truncated { len: sealed.len() });
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| SealError::Authentication)?;
        self.cipher
            .decrypt(&nonce, Payload { msg: ct, aad })
            .map_err(|_| SealError::Authentication)
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// 32 random bytes in a zeroizing box.
fn random_key() -> Zeroizing<[u8; KEY_LEN]> {
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    if let Err(e) = getrandom::fill(&mut bytes[..]) {
        panic!("the system random source failed: {e}");
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip() {
        let key = DataKey::generate();
        let sealed = key.seal(b"hello swarm", b"tree/key");
        assert_eq!(sealed.len(), b"hello swarm".len() + OVERHEAD);
        assert_eq!(key.open(&sealed, b"tree/key").unwrap(), b"hello swarm");
        // Empty plaintext is fine too.
        let sealed = key.seal(b"", b"");
        assert_eq!(key.open(&sealed, b"").unwrap(), b"");
    }

    #[test]
    fn nonce_is_random_per_seal() {
        let key = DataKey::generate();
        let a = key.seal(b"same", b"aad");
        let b = key.seal(b"same", b"aad");
        assert_ne!(a, b);
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
    }

    #[test]
    fn plaintext_is_not_in_the_output() {
        let key = DataKey::generate();
        let sealed = key.seal(b"DISTINCTIVE-PLAINTEXT", b"");
        assert!(!sealed.windows(21).any(|w| w == b"DISTINCTIVE-PLAINTEXT"));
    }

    #[test]
    fn wrong_aad_is_refused() {
        let key = DataKey::generate();
        let sealed = key.seal(b"record", b"entries/1");
        assert!(matches!(
            key.open(&sealed, b"entries/2"),
            Err(SealError::Authentication)
        ));
    }

    #[test]
    fn wrong_key_is_refused() {
        let sealed = DataKey::generate().seal(b"record", b"a");
        assert!(matches!(
            DataKey::generate().open(&sealed, b"a"),
            Err(SealError::Authentication)
        ));
    }

    #[test]
    fn every_flipped_bit_position_is_detected() {
        let key = DataKey::generate();
        let sealed = key.seal(b"some record", b"a");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(key.open(&bad, b"a").is_err(), "flip at byte {i} accepted");
        }
    }

    #[test]
    fn truncated_input_is_refused() {
        let key = DataKey::generate();
        let sealed = key.seal(b"x", b"");
        assert!(matches!(
            key.open(&sealed[..OVERHEAD - 1], b""),
            Err(SealError::Truncated { .. })
        ));
        assert!(key.open(&sealed[..sealed.len() - 1], b"").is_err());
    }

    #[test]
    fn clone_opens_the_same_data() {
        let key = DataKey::generate();
        let sealed = key.seal(b"abc", b"");
        assert_eq!(key.clone().open(&sealed, b"").unwrap(), b"abc");
    }

    #[test]
    fn debug_hides_the_key() {
        let key = DataKey::generate();
        let shown = format!("{key:?}");
        assert_eq!(shown, "DataKey(<redacted>)");
        let hex: String = key.bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(&hex));
    }
}
