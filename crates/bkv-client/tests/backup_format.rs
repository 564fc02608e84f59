//! The backup format as a reader meets it: round trips at every size around the chunk
//! boundaries, and every way of damaging a backup (cutting, extending, reordering, swapping
//! chunks between backups, altering the header or a chunk, another key) refused with the
//! error that names it; random and mutated inputs as property tests at the end. The
//! byte-exact vectors are in `backup_vectors.rs`.

use std::io::{Read as _, Write as _};

use bkv_client::backup::{
    Algorithm, BackupKey, ChunkSize, Decryptor, Encryptor, HEADER_LEN, HEADER_MAC_LEN, Header,
    SALT_LEN, StreamError, StreamOpener, StreamSealer, TAG_LEN, decrypt, encrypt,
};
use proptest::prelude::*;
use rand::{CryptoRng, RngCore};

/// Small chunks, so that a few dozen bytes make several of them.
const CHUNK: u32 = 16;

fn key(byte: u8) -> BackupKey {
    BackupKey::from_bytes([byte; 32])
}

fn chunk_size() -> ChunkSize {
    ChunkSize::new(CHUNK).expect("16 is a valid chunk size")
}

fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

/// A generator that gives the same byte again and again: a fixed salt.
struct Fixed(u8);

impl RngCore for Fixed {
    fn next_u32(&mut self) -> u32 {
        u32::from_ne_bytes([self.0; 4])
    }
    fn next_u64(&mut self) -> u64 {
        u64::from_ne_bytes([self.0; 8])
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(self.0);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        dest.fill(self.0);
        Ok(())
    }
}

impl CryptoRng for Fixed {}

fn sealer(key: &BackupKey, salt: u8) -> StreamSealer {
    StreamSealer::with_rng(key, chunk_size(), &mut Fixed(salt))
}

/// A backup of `data` under `key` with a salt of `salt` bytes and 16-byte chunks.
fn backup_with_salt(key: &BackupKey, salt: u8, data: &[u8]) -> Vec<u8> {
    let sealer = sealer(key, salt);
    let mut enc = Encryptor::from_sealer(sealer, Vec::new()).expect("writes to a Vec");
    enc.write_all(data).expect("writes to a Vec");
    enc.finish().expect("writes to a Vec")
}

fn backup(key: &BackupKey, data: &[u8]) -> Vec<u8> {
    backup_with_salt(key, 5, data)
}

fn restore(key: &BackupKey, file: &[u8]) -> Result<Vec<u8>, StreamError> {
    let mut out = Vec::new();
    decrypt(key, file, &mut out)?;
    Ok(out)
}

/// The sealed chunks of a backup with 16-byte chunks (the last may be shorter).
fn chunks(file: &[u8]) -> Vec<Vec<u8>> {
    file[HEADER_LEN..]
        .chunks(CHUNK as usize + TAG_LEN)
        .map(<[u8]>::to_vec)
        .collect()
}

fn assemble(header: &[u8], chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = header.to_vec();
    for c in chunks {
        out.extend_from_slice(c);
    }
    out
}

#[test]
fn round_trips_at_every_size_around_chunk_boundaries() {
    let k = key(1);
    for len in 0..=(4 * CHUNK as usize + 1) {
        let data = plaintext(len);
        let file = backup(&k, &data);
        let n_chunks = len.div_ceil(CHUNK as usize).max(1);
        assert_eq!(
            file.len(),
            HEADER_LEN + len + n_chunks * TAG_LEN,
            "len {len}"
        );
        assert_eq!(
            restore(&k, &file).as_deref(),
            Ok(data.as_slice()),
            "len {len}"
        );
        // Through `Read` with an odd buffer size.
        let mut dec = Decryptor::new(&k, file.as_slice()).expect("header");
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        loop {
            let n = dec.read(&mut buf).expect("reads");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, data, "len {len}");
        assert!(dec.is_finished());
        assert_eq!(dec.plaintext_len(), len as u64);
    }
}

#[test]
fn the_reader_and_writer_helpers_round_trip_with_the_default_chunk_size() {
    let k = BackupKey::generate();
    let data = plaintext(200_000);
    let mut file = Vec::new();
    assert_eq!(encrypt(&k, data.as_slice(), &mut file), Ok(200_000));
    // 64 KiB chunks: 4 of them, the last one short.
    assert_eq!(file.len(), HEADER_LEN + 200_000 + 4 * TAG_LEN);
    let mut out = Vec::new();
    assert_eq!(decrypt(&k, file.as_slice(), &mut out), Ok(200_000));
    assert_eq!(out, data);
    // Two backups of the same data under the same key share nothing but the magic.
    let mut again = Vec::new();
    encrypt(&k, data.as_slice(), &mut again).expect("encrypts");
    assert_ne!(file[10..42], again[10..42]);
    assert_ne!(
        file[HEADER_LEN..HEADER_LEN + 32],
        again[HEADER_LEN..HEADER_LEN + 32]
    );
}

#[test]
fn every_cut_is_refused() {
    let k = key(1);
    let file = backup(&k, &plaintext(40)); // chunks of 16, 16 and 8 bytes
    assert_eq!(restore(&k, &[]), Err(StreamError::NotABackup));
    for cut in 1..file.len() {
        let e = restore(&k, &file[..cut]).expect_err("a cut backup is refused");
        let boundary = HEADER_LEN + 32;
        match cut {
            c if c < HEADER_LEN => assert_eq!(e, StreamError::Truncated { chunks: 0 }, "{c}"),
            // Cut at a chunk boundary: the chunks before it opened, the final one is missing.
            c if c == HEADER_LEN => assert_eq!(e, StreamError::Truncated { chunks: 0 }),
            c if c == HEADER_LEN + 32 => assert_eq!(e, StreamError::Truncated { chunks: 1 }),
            c if c == boundary + 32 => assert_eq!(e, StreamError::Truncated { chunks: 2 }),
            // Cut inside a chunk: that chunk does not authenticate (or is shorter than a tag).
            c => {
                let chunk = ((c - HEADER_LEN) / 32) as u64;
                assert!(
                    e == StreamError::Corrupted { chunk }
                        || e == StreamError::Truncated { chunks: chunk },
                    "cut at {c}: {e:?}"
                );
            }
        }
    }
}

#[test]
fn an_encryptor_dropped_without_finish_leaves_a_truncated_backup() {
    let k = key(1);
    let mut file = Vec::new();
    {
        let sealer = sealer(&k, 5);
        let mut enc = Encryptor::from_sealer(sealer, &mut file).expect("header");
        enc.write_all(&plaintext(40)).expect("writes");
    }
    // Two full chunks were sealed as not last; the rest was never written.
    assert_eq!(file.len(), HEADER_LEN + 2 * 32);
    assert_eq!(
        restore(&k, &file),
        Err(StreamError::Truncated { chunks: 2 })
    );
}

#[test]
fn appended_data_is_refused() {
    let k = key(1);
    // Ends on a chunk boundary: a whole extra chunk after the final one.
    let file = backup(&k, &plaintext(32));
    let extra = backup_with_salt(&k, 5, &plaintext(48));
    let mut longer = file.clone();
    longer.extend_from_slice(&chunks(&extra)[1]);
    assert_eq!(
        restore(&k, &longer),
        Err(StreamError::TrailingData { chunk: 1 })
    );
    // Any byte after the final chunk.
    for tail in [&[0u8][..], &[1, 2, 3], &[0; 32], &[0; 33]] {
        let mut longer = file.clone();
        longer.extend_from_slice(tail);
        let e = restore(&k, &longer).expect_err("refused");
        assert!(
            matches!(
                e,
                StreamError::Corrupted { .. } | StreamError::TrailingData { .. }
            ),
            "{e:?}"
        );
    }
}

#[test]
fn reordered_dropped_repeated_and_foreign_chunks_are_refused() {
    let k = key(1);
    let file = backup(&k, &plaintext(56)); // chunks 0, 1, 2 full, 3 short
    let header = &file[..HEADER_LEN];
    let c = chunks(&file);
    assert_eq!(c.len(), 4);
    let swapped = assemble(
        header,
        &[c[1].clone(), c[0].clone(), c[2].clone(), c[3].clone()],
    );
    assert_eq!(
        restore(&k, &swapped),
        Err(StreamError::Corrupted { chunk: 0 })
    );
    let dropped = assemble(header, &[c[0].clone(), c[2].clone(), c[3].clone()]);
    assert_eq!(
        restore(&k, &dropped),
        Err(StreamError::Corrupted { chunk: 1 })
    );
    let repeated = assemble(
        header,
        &[c[0].clone(), c[0].clone(), c[2].clone(), c[3].clone()],
    );
    assert_eq!(
        restore(&k, &repeated),
        Err(StreamError::Corrupted { chunk: 1 })
    );
    // The same place of another backup under the same key (another salt) does not fit.
    let other = backup_with_salt(&k, 6, &plaintext(56));
    let o = chunks(&other);
    let spliced = assemble(
        header,
        &[c[0].clone(), o[1].clone(), c[2].clone(), c[3].clone()],
    );
    assert_eq!(
        restore(&k, &spliced),
        Err(StreamError::Corrupted { chunk: 1 })
    );
    // Nor does the other backup's header with this one's chunks.
    let mut rehead = other[..HEADER_LEN].to_vec();
    rehead.extend_from_slice(&file[HEADER_LEN..]);
    assert_eq!(
        restore(&k, &rehead),
        Err(StreamError::Corrupted { chunk: 0 })
    );
    // A backup ending at its last full chunk, with the final chunk of the shorter backup
    // (same salt, same key) moved in: its last flag is right but its counter is not.
    let short = backup(&k, &plaintext(8));
    let moved = assemble(header, &[c[0].clone(), chunks(&short)[0].clone()]);
    assert_eq!(
        restore(&k, &moved),
        Err(StreamError::Corrupted { chunk: 1 })
    );
}

#[test]
fn every_altered_byte_of_a_chunk_is_refused() {
    let k = key(1);
    let file = backup(&k, &plaintext(40));
    for i in HEADER_LEN..file.len() {
        let mut bad = file.clone();
        bad[i] ^= 0x01;
        let chunk = ((i - HEADER_LEN) / 32) as u64;
        assert_eq!(
            restore(&k, &bad),
            Err(StreamError::Corrupted { chunk }),
            "byte {i}"
        );
    }
}

#[test]
fn every_altered_byte_of_the_header_is_refused_before_any_chunk() {
    let k = key(1);
    let file = backup(&k, &plaintext(40));
    for i in 0..HEADER_LEN {
        for bit in 0..8 {
            let mut bad = file.clone();
            bad[i] ^= 1 << bit;
            let e = restore(&k, &bad).expect_err("refused");
            let expected = match i {
                0..=3 => matches!(e, StreamError::NotABackup),
                4 => matches!(e, StreamError::UnsupportedVersion(_)),
                5 => matches!(e, StreamError::UnsupportedAlgorithm(_)),
                // A chunk size still in range changes the MAC input.
                6..=9 => matches!(e, StreamError::BadChunkSize(_) | StreamError::WrongKey),
                _ => e == StreamError::WrongKey,
            };
            assert!(expected, "byte {i} bit {bit}: {e:?}");
        }
    }
}

#[test]
fn another_key_is_refused_at_the_header() {
    let file = backup(&key(1), &plaintext(40));
    assert_eq!(restore(&key(2), &file), Err(StreamError::WrongKey));
    let e = Decryptor::new(&key(2), file.as_slice()).expect_err("refused");
    assert_eq!(e, StreamError::WrongKey);
    assert!(e.to_string().contains("not made with this key"));
}

#[test]
fn errors_reach_readers_through_io_and_stay() {
    let k = key(1);
    let mut bad = backup(&k, &plaintext(40));
    bad[HEADER_LEN + 40] ^= 1; // in chunk 1
    let mut dec = Decryptor::new(&k, bad.as_slice()).expect("header");
    let mut out = Vec::new();
    let e = dec.read_to_end(&mut out).expect_err("chunk 1 is altered");
    // Only the chunk that authenticated was released.
    assert_eq!(out, plaintext(16));
    assert_eq!(StreamError::from_io(e), StreamError::Corrupted { chunk: 1 });
    let again = dec.read(&mut [0u8; 8]).expect_err("stays failed");
    assert_eq!(
        StreamError::from_io(again),
        StreamError::Corrupted { chunk: 1 }
    );
}

#[test]
fn the_sans_io_sides_refuse_misuse() {
    let k = key(1);
    let mut sealer = sealer(&k, 5);
    let mut short = vec![0u8; 15];
    assert_eq!(
        sealer.seal(&mut short, false),
        Err(StreamError::ChunkLength { chunk: 0, len: 15 })
    );
    let mut long = vec![0u8; 17];
    assert_eq!(
        sealer.seal(&mut long, true),
        Err(StreamError::ChunkLength { chunk: 0, len: 17 })
    );
    let mut full = vec![0u8; 16];
    sealer.seal(&mut full, false).expect("a full chunk");
    let mut empty = Vec::new();
    assert_eq!(
        sealer.seal(&mut empty, true),
        Err(StreamError::ChunkLength { chunk: 1, len: 0 })
    );
    let mut last = vec![0u8; 3];
    sealer.seal(&mut last, true).expect("a short last chunk");
    assert!(sealer.is_finished());
    assert_eq!(
        sealer.seal(&mut vec![0u8; 3], true),
        Err(StreamError::Finished)
    );

    let mut opener = StreamOpener::new(&k, &sealer.header()).expect("header");
    let mut first = full.clone();
    opener.open(&mut first, false).expect("chunk 0");
    assert_eq!(first, [0u8; 16]);
    let mut second = last.clone();
    opener.open(&mut second, true).expect("chunk 1");
    assert_eq!(second, [0u8; 3]);
    assert!(opener.is_finished());
    let mut more = last.clone();
    assert_eq!(
        opener.open(&mut more, true),
        Err(StreamError::TrailingData { chunk: 1 })
    );
    assert!(more.is_empty());
}

#[test]
fn chunk_sizes_outside_the_range_are_refused() {
    assert_eq!(ChunkSize::new(15), Err(StreamError::BadChunkSize(15)));
    assert_eq!(
        ChunkSize::new(ChunkSize::MAX + 1),
        Err(StreamError::BadChunkSize(ChunkSize::MAX + 1))
    );
    assert!(ChunkSize::new(ChunkSize::MIN).is_ok());
    assert!(ChunkSize::new(ChunkSize::MAX).is_ok());
}

#[test]
fn error_messages_carry_no_key_or_plaintext() {
    let k = key(0xab);
    let data = b"secret chat history".to_vec();
    let file = backup(&k, &data);
    let mut bad = file.clone();
    bad[HEADER_LEN] ^= 1;
    let errors = [
        restore(&key(2), &file).expect_err("wrong key"),
        restore(&k, &bad).expect_err("altered"),
        restore(&k, &file[..HEADER_LEN + 3]).expect_err("cut"),
    ];
    for e in errors {
        let text = format!("{e} {e:?}");
        assert!(!text.contains("abab"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
    assert!(!format!("{k:?}").contains("abab"));
    // Nor do the reader and writer show the chunk they hold.
    let mut enc = Encryptor::new(&k, Vec::new()).expect("header");
    enc.write_all(&data).expect("buffered");
    let shown = format!("{enc:?}");
    assert!(!shown.contains("115, 101, 99"), "{shown}");
    let mut dec = Decryptor::new(&k, file.as_slice()).expect("header");
    dec.next_chunk().expect("opens").expect("a chunk");
    let shown = format!("{dec:?}");
    assert!(
        !shown.contains("115, 101, 99") && !shown.contains("abab"),
        "{shown}"
    );
}

// Property tests: the same checks run as fuzz targets (`fuzz/checks/backup.rs`).

/// Edits of a backup: set a byte, insert, remove, cut.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
    /// Moves the chunk at one index to another.
    MoveChunk(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Remove),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::MoveChunk(a, b)),
    ]
}

fn apply(file: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = file.to_vec();
    for e in edits {
        let n = b.len();
        match *e {
            Edit::Set(i, v) if n > 0 => b[i % n] = v,
            Edit::Insert(i, v) => b.insert(i % (n + 1), v),
            Edit::Remove(i) if n > 0 => {
                b.remove(i % n);
            }
            Edit::Truncate(i) => b.truncate(i % (n + 1)),
            Edit::MoveChunk(from, to) if n > HEADER_LEN => {
                let mut c = chunks(&b);
                let len = c.len();
                let moved = c.remove(from % len);
                c.insert(to % len, moved);
                b = assemble(&b[..HEADER_LEN], &c);
            }
            _ => {}
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// What the header parser accepts encodes back to the same bytes.
    #[test]
    fn header_parser_accepts_only_its_own_encodings(bytes in prop::collection::vec(any::<u8>(), HEADER_LEN)) {
        let arr: [u8; HEADER_LEN] = bytes.clone().try_into().expect("HEADER_LEN bytes");
        if let Ok(h) = Header::parse(&arr) {
            prop_assert_eq!(h.encode().to_vec(), bytes);
        }
    }

    /// Headers that pass the keyless checks, with random salt and MAC, never verify.
    #[test]
    fn forged_headers_never_verify(
        chunk in ChunkSize::MIN..=ChunkSize::MAX,
        salt in any::<[u8; SALT_LEN]>(),
        mac in any::<[u8; HEADER_MAC_LEN]>(),
    ) {
        let h = Header {
            algorithm: Algorithm::Aes256GcmHkdfSha256,
            chunk_size: ChunkSize::new(chunk).expect("in range"),
            salt,
            mac,
        };
        prop_assert_eq!(
            StreamOpener::new(&key(1), &h.encode()).map(|_| ()),
            Err(StreamError::WrongKey)
        );
    }

    /// Random bytes, with or without a valid header in front, never decrypt.
    #[test]
    fn random_input_never_decrypts(
        with_header in any::<bool>(),
        tail in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let k = key(1);
        let mut input = if with_header { backup(&k, b"")[..HEADER_LEN].to_vec() } else { Vec::new() };
        input.extend_from_slice(&tail);
        prop_assert!(restore(&k, &input).is_err());
    }

    /// Any damage to a backup is refused; the only edits that decrypt are those that left
    /// the bytes as they were, and they decrypt to the original.
    #[test]
    fn damaged_backups_never_decrypt_to_anything_else(
        len in 0usize..100,
        edits in prop::collection::vec(edit(), 1..5),
    ) {
        let k = key(1);
        let data = plaintext(len);
        let file = backup(&k, &data);
        let damaged = apply(&file, &edits);
        match restore(&k, &damaged) {
            Ok(out) => {
                prop_assert_eq!(&damaged, &file);
                prop_assert_eq!(out, data);
            }
            Err(e) => prop_assert_ne!(&damaged, &file, "{:?}", e),
        }
    }
}
