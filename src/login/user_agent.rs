//! A `User-Agent` header in the words the history and sessions pages use: device, operating
//! system, browser. Pure. Parsed with woothee (a maintained, data-driven classifier shared
//! by several languages); the raw header is stored too, so a better parser can redo this.

use woothee::parser::Parser;

/// The longest header kept; real browsers send 100–300 bytes.
pub const MAX_LEN: usize = 512;

const UNKNOWN: &str = "UNKNOWN";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Described {
    /// Computer, Phone, Tablet, Mobile phone, Appliance, Bot, Other, or Unknown device.
    pub device: String,
    /// e.g. `Windows 10`, `macOS 10.15.7`, `Android 14`, `iOS 17.1`, `Linux`.
    pub os: String,
    /// Name and major version, e.g. `Firefox 128`.
    pub browser: String,
}

impl Described {
    /// One phrase: `Firefox 128 on Linux (computer)`.
    pub fn summary(&self) -> String {
        format!("{} on {} ({})", self.browser, self.os, self.device.to_lowercase())
    }
}

/// The header cut to [`MAX_LEN`] bytes on a character boundary.
pub fn clip(ua: &str) -> &str {
    if ua.len() <= MAX_LEN {
        return ua;
    }
    let mut end = MAX_LEN;
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    &ua[..end]
}

pub fn describe(ua: Option<&str>) -> Described {
    let unknown = || Described { device: "Unknown device".into(), os: "Unknown system".into(), browser: "Unknown browser".into() };
    let Some(ua) = ua.map(str::trim).filter(|u| !u.is_empty()) else { return unknown() };
    let Some(r) = Parser::new().parse(ua) else { return unknown() };
    let known = |s: &str| !s.is_empty() && s != UNKNOWN;
    let device = match r.category {
        "pc" => "Computer",
        "smartphone" if r.os == "iPad" => "Tablet",
        // Android tablets leave "Mobile" out of their user agent.
        "smartphone" if r.os == "Android" && !ua.contains("Mobile") => "Tablet",
        "smartphone" => "Phone",
        "mobilephone" => "Mobile phone",
        "appliance" => "Appliance",
        "crawler" => "Bot",
        "misc" => "Other",
        _ => "Unknown device",
    };
    let os_name = match r.os {
        "Mac OSX" => "macOS",
        "iPhone" | "iPad" | "iPod" => "iOS",
        other if known(other) => other,
        _ => "Unknown system",
    };
    let os = if known(&r.os_version) && matches!(os_name, "macOS" | "iOS" | "Android" | "ChromeOS") {
        format!("{os_name} {}", r.os_version.replace('_', "."))
    } else {
        os_name.to_string()
    };
    let browser = match (known(r.name), r.version.split('.').next().filter(|v| known(v))) {
        (true, Some(major)) => format!("{} {major}", r.name),
        (true, None) => r.name.to_string(),
        (false, _) => "Unknown browser".to_string(),
    };
    Described { device: device.into(), os, browser }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_browsers() {
        let firefox = describe(Some("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"));
        assert_eq!(firefox, Described { device: "Computer".into(), os: "Linux".into(), browser: "Firefox 128".into() });
        assert_eq!(firefox.summary(), "Firefox 128 on Linux (computer)");
        let chrome = describe(Some(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
        ));
        assert_eq!((chrome.device.as_str(), chrome.os.as_str(), chrome.browser.as_str()), ("Computer", "Windows 10", "Chrome 126"));
        let iphone = describe(Some(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        ));
        assert_eq!((iphone.device.as_str(), iphone.browser.as_str()), ("Phone", "Safari 17"));
        assert!(iphone.os.starts_with("iOS"), "{iphone:?}");
        let tablet = describe(Some("Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"));
        assert_eq!(tablet.device, "Tablet");
    }

    #[test]
    fn nothing_or_nonsense() {
        assert_eq!(describe(None).device, "Unknown device");
        assert_eq!(describe(Some("  ")).browser, "Unknown browser");
        let odd = describe(Some("x"));
        assert_eq!(odd.os, "Unknown system");
    }

    #[test]
    fn long_headers_are_clipped_on_a_character_boundary() {
        let long = "é".repeat(400);
        let clipped = clip(&long);
        assert!(clipped.len() <= MAX_LEN && clipped.len() >= MAX_LEN - 1);
        assert_eq!(clip("short"), "short");
    }
}
