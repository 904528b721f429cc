//! Framing and encoding: a frame is a 4-byte big-endian length followed by that many bytes
//! of bincode (standard configuration). This is the only file that names bincode, so the
//! encoding can be swapped (postcard takes the same serde derives) without touching callers.
//!
//! The length is checked against the cap before any buffer is sized from it, so a peer
//! announcing a 4 GiB frame costs nothing but the connection.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::{self, Read};

/// The largest frame either side accepts by default: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;
/// The smallest frame cap a daemon may run with: it still fits the largest task at the
/// default limits (title, payload, result and error; see `limits::Limits::check_fits`).
pub const MIN_MAX_FRAME: usize = 4 * 1024 * 1024;

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// bincode's own allocation limit: no decoded value may claim more than a frame holds.
const DECODE_LIMIT: usize = DEFAULT_MAX_FRAME;

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<DECODE_LIMIT>,
> {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("frame of {len} bytes is larger than the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("the encoding is larger than the frame limit of {max} bytes")]
    EncodingTooLarge { max: usize },
    #[error("undecodable frame: {0}")]
    Decode(String),
    #[error("cannot encode frame: {0}")]
    Encode(String),
}

/// Appends to a buffer, refusing to grow it past `limit`: an answer too large for a frame
/// fails as soon as it crosses the cap instead of being encoded whole first. A bincode
/// `Writer` rather than an `io::Write`: bincode writes every field separately, and the
/// `io::Write` path cost 15 % of a large list's encoding (BENCHMARKS.md).
struct CappedWriter<'a> {
    out: &'a mut Vec<u8>,
    limit: usize,
}

/// The message of the error a full `CappedWriter` returns.
const CAP_REACHED: &str = "frame cap reached";

impl bincode::enc::write::Writer for CappedWriter<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        if self.out.len() + bytes.len() > self.limit {
            return Err(bincode::error::EncodeError::Other(CAP_REACHED));
        }
        self.out.extend_from_slice(bytes);
        Ok(())
    }
}

/// Appends one frame holding `value` to `out`. Fails (leaving `out` as it was) when the
/// encoding is larger than `max`.
pub fn encode_frame<T: Serialize>(
    out: &mut Vec<u8>,
    value: &T,
    max: usize,
) -> Result<(), CodecError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    let writer = CappedWriter {
        limit: start + HEADER_LEN + max,
        out,
    };
    if let Err(e) = bincode::serde::encode_into_writer(value, writer, config()) {
        out.truncate(start);
        return Err(match e {
            bincode::error::EncodeError::Other(CAP_REACHED) => CodecError::EncodingTooLarge { max },
            other => CodecError::Encode(other.to_string()),
        });
    }
    let len = out.len() - start - HEADER_LEN;
    out[start..start + HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Reads the body length from a frame header, refusing lengths above `max`.
pub fn body_len(header: [u8; HEADER_LEN], max: usize) -> Result<usize, CodecError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(CodecError::TooLarge { len, max });
    }
    Ok(len)
}

/// The body length the frame at the start of `buf` announces, once its header is there:
/// a reader can decide whether to take a large frame before its body arrives.
pub fn announced_len(buf: &[u8], max: usize) -> Result<Option<usize>, CodecError> {
    match buf.first_chunk::<HEADER_LEN>() {
        Some(header) => body_len(*header, max).map(Some),
        None => Ok(None),
    }
}

/// If `buf` starts with a complete frame, returns the length of its body (the frame spans
/// `HEADER_LEN + len` bytes). `Ok(None)`: more bytes are needed.
pub fn complete_frame(buf: &[u8], max: usize) -> Result<Option<usize>, CodecError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = body_len(*header, max)?;
    Ok((buf.len() >= HEADER_LEN + len).then_some(len))
}

/// Decodes a whole frame body; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let (value, used) = decode_prefix(body)?;
    if used != body.len() {
        return Err(CodecError::Decode(format!(
            "{} unexpected bytes after the value",
            body.len() - used
        )));
    }
    Ok(value)
}

/// Decodes a value from the front of `bytes`, returning it and the bytes it used. Lets the
/// daemon read a request's id even when the rest of the request is not understood.
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), CodecError> {
    bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError::Decode(e.to_string()))
}

/// Appends `value`'s encoding to `out`, with no size cap. For the daemon's journal
/// (`daemon/store/journal.rs`), whose records are its own, checksummed, and bounded by the
/// request they came from; kept here so bincode stays named in one file.
pub fn encode_unframed<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), CodecError> {
    let writer = CappedWriter {
        limit: usize::MAX,
        out,
    };
    bincode::serde::encode_into_writer(value, writer, bincode::config::standard())
        .map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes what [`encode_unframed`] wrote; trailing bytes are an error.
pub fn decode_unframed<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::Decode(format!(
            "{} unexpected bytes after the value",
            bytes.len() - used
        )));
    }
    Ok(value)
}

/// Blocking read of one frame body into `body` (replacing its contents). `Ok(false)` on a
/// clean end of stream before the first header byte.
pub fn read_frame<R: Read>(
    reader: &mut R,
    body: &mut Vec<u8>,
    max: usize,
) -> Result<bool, CodecError> {
    let mut header = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        match reader.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = body_len(header, max)?;
    body.clear();
    body.resize(len, 0);
    reader.read_exact(body)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::request::{Request, RequestFrame};
    use crate::protocol::types::NewTask;

    #[test]
    fn frames_round_trip() {
        let frame = RequestFrame {
            id: 7,
            request: Request::AddTasks {
                tasks: vec![NewTask::new("hello")],
            },
        };
        let mut out = Vec::new();
        encode_frame(&mut out, &frame, DEFAULT_MAX_FRAME).unwrap();
        let len = complete_frame(&out, DEFAULT_MAX_FRAME).unwrap().unwrap();
        assert_eq!(out.len(), HEADER_LEN + len);
        let back: RequestFrame = decode(&out[HEADER_LEN..]).unwrap();
        assert_eq!(back, frame);

        let mut body = Vec::new();
        assert!(read_frame(&mut &out[..], &mut body, DEFAULT_MAX_FRAME).unwrap());
        assert_eq!(decode::<RequestFrame>(&body).unwrap(), frame);
    }

    #[test]
    fn oversized_length_is_refused_before_allocating() {
        let header = u32::MAX.to_be_bytes();
        assert!(matches!(
            complete_frame(&header, DEFAULT_MAX_FRAME),
            Err(CodecError::TooLarge { .. })
        ));
        let mut body = Vec::new();
        let err = read_frame(&mut &header[..], &mut body, DEFAULT_MAX_FRAME).unwrap_err();
        assert!(matches!(err, CodecError::TooLarge { .. }));
        assert_eq!(body.capacity(), 0);
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let mut out = Vec::new();
        encode_frame(
            &mut out,
            &RequestFrame {
                id: 1,
                request: Request::Ping,
            },
            1024,
        )
        .unwrap();
        for cut in 0..out.len() {
            assert_eq!(complete_frame(&out[..cut], 1024).unwrap(), None);
        }
        let mut body = Vec::new();
        let truncated = &out[..out.len() - 1];
        assert!(read_frame(&mut &truncated[..], &mut body, 1024).is_err());
    }

    #[test]
    fn encoding_larger_than_the_cap_is_refused_and_leaves_buffer_intact() {
        let mut out = vec![1, 2, 3];
        let task = NewTask::new("x".repeat(100));
        let err = encode_frame(&mut out, &task, 10).unwrap_err();
        assert!(matches!(err, CodecError::EncodingTooLarge { max: 10 }));
        assert_eq!(out, vec![1, 2, 3]);
    }

    #[test]
    fn garbage_and_trailing_bytes_are_decode_errors() {
        assert!(decode::<RequestFrame>(&[0xff; 3]).is_err());
        let mut out = Vec::new();
        encode_frame(
            &mut out,
            &RequestFrame {
                id: 1,
                request: Request::Ping,
            },
            1024,
        )
        .unwrap();
        let mut body = out[HEADER_LEN..].to_vec();
        body.push(0);
        assert!(decode::<RequestFrame>(&body).is_err());
        // An unknown variant index.
        assert!(decode::<Request>(&[200]).is_err());
    }

    #[test]
    fn huge_claimed_vector_length_does_not_allocate() {
        // id = 1, variant AddTasks (2), then a vector length of u64::MAX (varint 253 + 8 bytes).
        let mut body = vec![1u8, 2, 253];
        body.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode::<RequestFrame>(&body).is_err());
    }
}
