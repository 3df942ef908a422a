//! Our own encryption of stored dumps (`backup.encryption_keys`): AES-256-GCM over fixed-size chunks, so a
//! dump of any size is encrypted and decrypted as a stream with one chunk in memory.
//!
//! Layout: `WSLBAK01` ‖ key-id length (1 byte) ‖ key id ‖ nonce prefix (7 random bytes), then frames of
//! `last (1 byte) ‖ ciphertext length (4 bytes, big-endian) ‖ ciphertext+tag`. Chunk `i` is sealed with the
//! nonce `prefix ‖ i (4 bytes) ‖ last`, and the header as associated data (the STREAM construction of Hoang,
//! Reyhanitabar, Rogaway and Vizár): a reordered, dropped, or appended chunk does not open, and a stream that
//! ends without its `last` chunk is refused as truncated.

use std::collections::HashMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};

const MAGIC: &[u8; 8] = b"WSLBAK01";
const PREFIX_LEN: usize = 7;
const TAG_LEN: usize = 16;
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not an encrypted backup (bad header)")]
    BadHeader,
    #[error("the backup was encrypted with key {0:?}, which is not in backup.encryption_keys")]
    UnknownKey(String),
    #[error("chunk {0} does not open (wrong key, corrupted or tampered)")]
    Corrupt(u32),
    #[error("the encrypted backup is truncated")]
    Truncated,
    #[error("data after the last chunk")]
    Trailing,
    #[error("no backup.encryption_keys configured")]
    NoKey,
}

/// `backup.encryption_keys`: the first encrypts, all decrypt.
#[derive(Clone, Default)]
pub struct EnvelopeKeys {
    active: Option<String>,
    keys: HashMap<String, [u8; 32]>,
}

impl std::fmt::Debug for EnvelopeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EnvelopeKeys(active={:?}, {} keys)",
            self.active,
            self.keys.len()
        )
    }
}

impl EnvelopeKeys {
    /// From `"<id>:<base64 32 bytes>"` entries (validated at config load).
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut keys = Self::default();
        for entry in entries {
            let (id, key) = crate::secrets::parse_key(entry).map_err(|e| e.to_string())?;
            keys.active.get_or_insert(id.clone());
            keys.keys.insert(id, key);
        }
        Ok(keys)
    }

    /// The id new objects are encrypted with; `None`: the envelope is off.
    pub fn active(&self) -> Option<&str> {
        self.active.as_deref()
    }

    pub fn encryptor(&self) -> Result<Encryptor, EnvelopeError> {
        let id = self.active.as_ref().ok_or(EnvelopeError::NoKey)?;
        let mut prefix = [0u8; PREFIX_LEN];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut prefix);
        let mut header = Vec::with_capacity(MAGIC.len() + 1 + id.len() + PREFIX_LEN);
        header.extend_from_slice(MAGIC);
        header.push(id.len() as u8);
        header.extend_from_slice(id.as_bytes());
        header.extend_from_slice(&prefix);
        Ok(Encryptor {
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(self.keys[id])),
            prefix,
            header,
            counter: 0,
            key_id: id.clone(),
        })
    }

    pub fn decryptor(&self) -> Decryptor {
        Decryptor {
            keys: self.clone(),
            state: None,
            buffer: Vec::new(),
            counter: 0,
            done: false,
        }
    }
}

fn nonce(prefix: &[u8; PREFIX_LEN], counter: u32, last: bool) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..PREFIX_LEN].copy_from_slice(prefix);
    nonce[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&counter.to_be_bytes());
    nonce[11] = last as u8;
    nonce
}

/// Encrypts one object: [`Self::header`] first, then one [`Self::seal`] per chunk, the last with `last`.
pub struct Encryptor {
    cipher: Aes256Gcm,
    prefix: [u8; PREFIX_LEN],
    header: Vec<u8>,
    counter: u32,
    key_id: String,
}

impl Encryptor {
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// One frame for a chunk of at most [`CHUNK`] bytes.
    pub fn seal(&mut self, plaintext: &[u8], last: bool) -> Vec<u8> {
        let nonce = nonce(&self.prefix, self.counter, last);
        self.counter += 1;
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &self.header,
                },
            )
            .expect("AES-GCM encryption of a bounded chunk cannot fail");
        let mut frame = Vec::with_capacity(5 + sealed.len());
        frame.push(last as u8);
        frame.extend_from_slice(&(sealed.len() as u32).to_be_bytes());
        frame.extend_from_slice(&sealed);
        frame
    }
}

struct Opened {
    cipher: Aes256Gcm,
    prefix: [u8; PREFIX_LEN],
    header: Vec<u8>,
}

/// Decrypts one object fed in pieces of any size ([`Self::push`]), then [`Self::finish`].
pub struct Decryptor {
    keys: EnvelopeKeys,
    state: Option<Opened>,
    buffer: Vec<u8>,
    counter: u32,
    done: bool,
}

impl Decryptor {
    /// Feeds stored bytes; returns the plaintext of every chunk completed by them.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        self.buffer.extend_from_slice(data);
        let mut out = Vec::new();
        if self.state.is_none() {
            if self.buffer.len() < MAGIC.len() + 1 {
                return Ok(out);
            }
            if &self.buffer[..MAGIC.len()] != MAGIC {
                return Err(EnvelopeError::BadHeader);
            }
            let id_len = self.buffer[MAGIC.len()] as usize;
            let header_len = MAGIC.len() + 1 + id_len + PREFIX_LEN;
            if self.buffer.len() < header_len {
                return Ok(out);
            }
            let id =
                String::from_utf8_lossy(&self.buffer[MAGIC.len() + 1..MAGIC.len() + 1 + id_len])
                    .into_owned();
            let key = self
                .keys
                .keys
                .get(&id)
                .ok_or_else(|| EnvelopeError::UnknownKey(id.clone()))?;
            let header: Vec<u8> = self.buffer.drain(..header_len).collect();
            let mut prefix = [0u8; PREFIX_LEN];
            prefix.copy_from_slice(&header[header_len - PREFIX_LEN..]);
            self.state = Some(Opened {
                cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key)),
                prefix,
                header,
            });
        }
        let state = self.state.as_ref().expect("header read");
        loop {
            if self.buffer.len() < 5 {
                break;
            }
            if self.done {
                return Err(EnvelopeError::Trailing);
            }
            let last = self.buffer[0] == 1;
            let len = u32::from_be_bytes(self.buffer[1..5].try_into().expect("4 bytes")) as usize;
            if !(TAG_LEN..=CHUNK + TAG_LEN).contains(&len) {
                return Err(EnvelopeError::Corrupt(self.counter));
            }
            if self.buffer.len() < 5 + len {
                break;
            }
            let nonce = nonce(&state.prefix, self.counter, last);
            let plain = state
                .cipher
                .decrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: &self.buffer[5..5 + len],
                        aad: &state.header,
                    },
                )
                .map_err(|_| EnvelopeError::Corrupt(self.counter))?;
            out.extend_from_slice(&plain);
            self.buffer.drain(..5 + len);
            self.counter += 1;
            self.done = last;
        }
        if self.done && !self.buffer.is_empty() {
            return Err(EnvelopeError::Trailing);
        }
        Ok(out)
    }

    /// The stream ended: it must have ended with its last chunk.
    pub fn finish(self) -> Result<(), EnvelopeError> {
        if self.done && self.buffer.is_empty() {
            Ok(())
        } else {
            Err(EnvelopeError::Truncated)
        }
    }
}

/// Whether stored bytes start like an encrypted object.
pub fn is_encrypted(start: &[u8]) -> bool {
    start.starts_with(MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> EnvelopeKeys {
        EnvelopeKeys::parse([
            "b2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            "b1:HxwdHhscGRoXGBUWExQREg8QDQ4LDAkKBwgFBgMEAQI=",
        ])
        .unwrap()
    }

    fn encrypt(keys: &EnvelopeKeys, data: &[u8]) -> Vec<u8> {
        let mut enc = keys.encryptor().unwrap();
        let mut out = enc.header().to_vec();
        let chunks: Vec<&[u8]> = data.chunks(CHUNK).collect();
        if chunks.is_empty() {
            out.extend(enc.seal(&[], true));
        }
        for (i, chunk) in chunks.iter().enumerate() {
            out.extend(enc.seal(chunk, i + 1 == chunks.len()));
        }
        out
    }

    fn decrypt(keys: &EnvelopeKeys, stored: &[u8], piece: usize) -> Result<Vec<u8>, EnvelopeError> {
        let mut dec = keys.decryptor();
        let mut out = Vec::new();
        for part in stored.chunks(piece) {
            out.extend(dec.push(part)?);
        }
        dec.finish()?;
        Ok(out)
    }

    #[test]
    fn round_trips_in_any_piece_size_and_hides_the_plaintext() {
        let keys = keys();
        let data: Vec<u8> = (0..(CHUNK * 2 + 777)).map(|i| (i % 251) as u8).collect();
        let stored = encrypt(&keys, &data);
        assert!(is_encrypted(&stored));
        assert!(!stored.windows(64).any(|w| w == &data[1000..1064]));
        for piece in [1, 4096, CHUNK + 3, stored.len()] {
            assert_eq!(decrypt(&keys, &stored, piece).unwrap(), data);
        }
        assert_eq!(decrypt(&keys, &encrypt(&keys, b""), 10).unwrap(), b"");
    }

    #[test]
    fn tampering_truncation_and_unknown_keys_are_refused() {
        let keys = keys();
        let data = vec![7u8; CHUNK + 10];
        let stored = encrypt(&keys, &data);
        let mut flipped = stored.clone();
        let at = flipped.len() - 20;
        flipped[at] ^= 1;
        assert!(matches!(
            decrypt(&keys, &flipped, 999),
            Err(EnvelopeError::Corrupt(1))
        ));
        // Dropping the last frame leaves a stream that never ends properly.
        let first_frame_end = keys.encryptor().unwrap().header().len() + 5 + CHUNK + TAG_LEN;
        assert!(matches!(
            decrypt(&keys, &stored[..first_frame_end], 999),
            Err(EnvelopeError::Truncated)
        ));
        let other =
            EnvelopeKeys::parse(["zz:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]).unwrap();
        assert!(matches!(
            decrypt(&other, &stored, 999),
            Err(EnvelopeError::UnknownKey(_))
        ));
        // A retired key still decrypts what it encrypted.
        let old = EnvelopeKeys::parse(["b1:HxwdHhscGRoXGBUWExQREg8QDQ4LDAkKBwgFBgMEAQI="]).unwrap();
        assert_eq!(decrypt(&keys, &encrypt(&old, b"abc"), 3).unwrap(), b"abc");
    }
}
