//! Reading an app's typed options ([`WatchOptions`], [`LogSettings`], [`Balance`]). A spec resolved
//! by this rpm2 carries them, parsed once by [`super::resolve_app`]; a spec saved by an rpm2 that did
//! not store them (an older app table or dump file) has them read from its raw `extra` options, the
//! way that rpm2 read them.

use super::log_options;
use super::spec::{AppSpec, Balance, LogSettings, WatchOptions};
use super::watch_options;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

impl AppSpec {
    /// The app's watch options (whether or not watching is on: see [`AppSpec::watch`]).
    pub fn watch_options(&self) -> Cow<'_, WatchOptions> {
        match &self.watching {
            Some(w) => Cow::Borrowed(w),
            None => Cow::Owned(watch_options::options_from_extra(&self.extra, &self.cwd)),
        }
    }

    /// The app's log options.
    pub fn log_settings(&self) -> Cow<'_, LogSettings> {
        match &self.logging {
            Some(l) => Cow::Borrowed(l),
            None => Cow::Owned(log_options::settings_from_extra(&self.extra)),
        }
    }

    /// How the app's cluster connections are balanced (round-robin unless `cluster_lb` says `shared`).
    pub fn balance(&self) -> Balance {
        self.balance.unwrap_or_else(|| balance_of(&self.extra))
    }

    /// Fills the typed options of a spec saved without them (see the module doc); a no-op otherwise.
    /// After it, the accessors above only borrow.
    pub fn fill_options(&mut self) {
        if self.watching.is_none() {
            self.watching = Some(self.watch_options().into_owned());
        }
        if self.logging.is_none() {
            self.logging = Some(self.log_settings().into_owned());
        }
        if self.balance.is_none() {
            self.balance = Some(self.balance());
        }
    }
}

/// `cluster_lb` among raw options: [`Balance::parse`], round-robin when absent or unknown.
pub(crate) fn balance_of(o: &BTreeMap<String, Value>) -> Balance {
    o.get("cluster_lb").and_then(Value::as_str).and_then(Balance::parse).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use crate::config::log_options::LogOptions;
    use crate::config::spec::{AppSpec, Balance, RotationOptions};
    use crate::config::{resolve_app, ResolveCtx};
    use serde_json::{json, Value};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rpm2-opts-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(d.join("src")).unwrap();
        std::fs::write(d.join("app.js"), "").unwrap();
        d
    }

    fn resolve(d: &Path, raw: Value) -> AppSpec {
        let ctx = ResolveCtx { cwd: d.to_path_buf(), env: Default::default(), env_name: None };
        resolve_app(&raw, &ctx).unwrap().spec
    }

    /// The spec as an rpm2 that did not store the typed options would have saved it.
    fn legacy(s: &AppSpec) -> AppSpec {
        let mut v = serde_json::to_value(s).unwrap();
        for k in ["watching", "logging", "balance"] {
            v.as_object_mut().unwrap().remove(k);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn resolve_parses_the_options_once() {
        let d = dir("parse");
        let s = resolve(
            &d,
            json!({"script": "app.js", "watch": ["src", "src"], "ignore_watch": "*.log", "watch_delay": "2s",
                   "watch_options": {"usePolling": true, "interval": 250}, "cluster_lb": "shared",
                   "log_type": "json", "disable_logs": "true", "max_size": "1M", "retain": "all", "compress": false}),
        );
        let w = s.watching.clone().unwrap();
        assert_eq!(w.roots, vec![d.join("src")]);
        assert_eq!(w.ignore, vec!["*.log"]);
        assert_eq!((w.delay(), w.poll()), (Duration::from_secs(2), Some(Duration::from_millis(250))));
        let l = s.logging.clone().unwrap();
        assert!(l.json && l.disabled);
        assert_eq!(
            l.rotation,
            RotationOptions { max_size: Some(1 << 20), retain: Some(usize::MAX), compress: Some(false) }
        );
        assert_eq!(s.balance, Some(Balance::Shared));
        // The raw options stay in `extra` for jlist.
        assert_eq!(s.extra["cluster_lb"], "shared");
        assert_eq!(s.extra["watch"], json!(["src", "src"]));
        // Defaults: watching off still has options (the cwd), round-robin, plain logs.
        let s = resolve(&d, json!({"script": "app.js", "cluster_lb": "bogus"}));
        assert_eq!(s.watching.as_ref().unwrap().roots, vec![d.clone()]);
        assert_eq!(s.balance(), Balance::RoundRobin);
        assert!(!s.log_settings().json);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn specs_saved_without_them_read_the_same() {
        let d = dir("legacy");
        for raw in [
            json!({"script": "app.js"}),
            json!({"script": "app.js", "watch": "src", "ignore_watch": ["a", "b/**"], "watch_delay": 300,
                   "watch_options": {"usePolling": true}, "cluster_lb": "rr", "log_type": "json",
                   "disable_logs": true, "max_size": false, "retain": 3, "compress": "true"}),
            json!({"script": "app.js", "watch": true, "cluster_lb": "kernel", "max_size": true}),
        ] {
            let s = resolve(&d, raw);
            let old = legacy(&s);
            assert!(old.watching.is_none() && old.logging.is_none() && old.balance.is_none());
            assert_eq!(old.watch_options(), s.watch_options());
            assert_eq!(old.log_settings(), s.log_settings());
            assert_eq!(old.balance(), s.balance());
            assert_eq!(LogOptions::for_app(&old, 1), LogOptions::for_app(&s, 1));
            let mut filled = old.clone();
            filled.fill_options();
            assert_eq!(filled, s);
            // A spec written by this rpm2 reads back whole.
            let back: AppSpec = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
            assert_eq!(back, s);
        }
        // A watched path removed since the declaration is skipped.
        let s = resolve(&d, json!({"script": "app.js", "watch": ["src", "app.js"]}));
        std::fs::remove_dir_all(d.join("src")).unwrap();
        assert_eq!(s.watch_options().existing_roots(), vec![d.join("app.js")]);
        assert_eq!(legacy(&s).watch_options().existing_roots(), vec![d.join("app.js")]);
        std::fs::remove_dir_all(d).unwrap();
    }
}
