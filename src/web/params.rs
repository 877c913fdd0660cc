//! Strict `application/x-www-form-urlencoded` parsing for protocol endpoints.
//! RFC 6749 §3.1: parameters must not repeat; empty ones count as absent.
//! Invalid UTF-8 and oversized values are refused instead of being "repaired".

use std::collections::BTreeMap;

use percent_encoding::percent_decode;

/// Longest accepted parameter value; long enough for any JWT we issue or accept.
pub const MAX_VALUE_LEN: usize = 8 * 1024;
const MAX_PARAMS: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamError {
    #[error("parameter `{0}` is repeated")]
    Repeated(String),
    #[error("a parameter is not valid UTF-8")]
    BadEncoding,
    #[error("parameter `{0}` is too long")]
    TooLong(String),
    #[error("too many parameters")]
    TooMany,
}

#[derive(Debug, Default, Clone)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn parse(input: &[u8]) -> Result<Self, ParamError> {
        let mut map = BTreeMap::new();
        for pair in input.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            if map.len() >= MAX_PARAMS {
                return Err(ParamError::TooMany);
            }
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            let name = decode(name)?;
            let value = decode(value)?;
            if value.len() > MAX_VALUE_LEN {
                return Err(ParamError::TooLong(name));
            }
            if value.is_empty() {
                continue;
            }
            if map.insert(name.clone(), value).is_some() {
                return Err(ParamError::Repeated(name));
            }
        }
        Ok(Self(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn decode(raw: &[u8]) -> Result<String, ParamError> {
    let plus_as_space: Vec<u8> = raw.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
    percent_decode(&plus_as_space).decode_utf8().map(|s| s.into_owned()).map_err(|_| ParamError::BadEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_drops_empty_values() {
        let p = Params::parse(b"a=1+2&b=%C3%A9&c=&d").unwrap();
        assert_eq!(p.get("a"), Some("1 2"));
        assert_eq!(p.get("b"), Some("\u{e9}"));
        assert_eq!(p.get("c"), None);
        assert_eq!(p.get("d"), None);
    }

    #[test]
    fn refuses_repeats_bad_utf8_and_giants() {
        assert_eq!(Params::parse(b"a=1&a=2").unwrap_err(), ParamError::Repeated("a".into()));
        assert_eq!(Params::parse(b"a=%FF").unwrap_err(), ParamError::BadEncoding);
        let giant = format!("a={}", "x".repeat(MAX_VALUE_LEN + 1));
        assert_eq!(Params::parse(giant.as_bytes()).unwrap_err(), ParamError::TooLong("a".into()));
    }
}
