//! `vouch scan`'s files, read a page at a time: a JSON file (the `List` of `kubectl get -o json`, or objects
//! one after another) is parsed an item at a time on a blocking thread and handed over in pages, so the dump
//! of a large cluster is never in memory at once (each item without its `metadata.managedFields`, which
//! nothing verified reads). YAML files are read whole, within `vouch check`'s limits
//! ([`vouch_policies::manifests`]); directories are read file by file.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use tokio::sync::mpsc;
use vouch_policies::manifests::{manifest_files, ManifestError, ManifestObject, ManifestReader};

/// Objects per page.
pub const PAGE_SIZE: usize = 500;
/// `-` names stdin.
const STDIN: &str = "-";

type Page = Result<Vec<ManifestObject>, ManifestError>;

/// The objects of some files (and stdin), a page at a time.
#[derive(Debug)]
pub struct InputPages {
    pages: mpsc::Receiver<Page>,
}

impl InputPages {
    /// Start reading `paths` (files, directories, `-`) on a blocking thread.
    pub fn open(paths: Vec<String>, page_size: usize) -> Self {
        let (tx, pages) = mpsc::channel(2);
        std::thread::spawn(move || {
            let mut out = Pager { tx, page: ManifestReader::new(), size: 0, page_size: page_size.max(1) };
            match read_all(&paths, &mut out) {
                Ok(()) => {
                    let _ = out.flush();
                }
                // Nothing read so far is sent: the scan stops on the error.
                Err(e) => {
                    let _ = out.tx.blocking_send(Err(e));
                }
            }
        });
        Self { pages }
    }

    /// The next page; `None` once everything is read. An error ends the input.
    pub async fn next_page(&mut self) -> Option<Page> {
        self.pages.recv().await
    }
}

/// Collects objects and sends them a page at a time.
struct Pager {
    tx: mpsc::Sender<Page>,
    page: ManifestReader,
    size: usize,
    page_size: usize,
}

impl Pager {
    fn add(
        &mut self,
        name: &str,
        document: usize,
        pointer: String,
        mut value: Value,
    ) -> Result<(), ManifestError> {
        if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("managedFields");
        }
        self.page.add_value(name, document, pointer, value)?;
        self.size += 1;
        if self.size >= self.page_size {
            self.flush().map_err(|()| ManifestError::Read {
                path: name.to_owned(),
                source: std::io::Error::other("the scan stopped reading"),
            })?;
        }
        Ok(())
    }

    /// Send what is collected; `Err` when nobody reads any more.
    fn flush(&mut self) -> Result<(), ()> {
        let page = std::mem::replace(&mut self.page, ManifestReader::new()).finish();
        self.size = 0;
        if page.is_empty() {
            return Ok(());
        }
        self.tx.blocking_send(Ok(page)).map_err(|_| ())
    }
}

fn read_all(paths: &[String], out: &mut Pager) -> Result<(), ManifestError> {
    let mut stdin_read = false;
    for p in paths {
        if p == STDIN {
            if stdin_read {
                return Err(ManifestError::StdinTwice);
            }
            stdin_read = true;
            read_one(STDIN, BufReader::new(std::io::stdin().lock()), out)?;
            continue;
        }
        let path = Path::new(p);
        let meta = std::fs::metadata(path).map_err(|source| read_error(p, source))?;
        let files = if meta.is_dir() { manifest_files(path)? } else { vec![path.to_owned()] };
        for file in files {
            let name = file.display().to_string();
            let opened = std::fs::File::open(&file).map_err(|source| read_error(&name, source))?;
            read_one(&name, BufReader::new(opened), out)?;
        }
    }
    Ok(())
}

fn read_error(path: &str, source: std::io::Error) -> ManifestError {
    ManifestError::Read { path: path.to_owned(), source }
}

/// One file: JSON streamed, anything else read whole as YAML.
fn read_one(name: &str, mut input: impl BufRead, out: &mut Pager) -> Result<(), ManifestError> {
    skip_whitespace(&mut input).map_err(|e| read_error(name, e))?;
    let first = input.fill_buf().map_err(|e| read_error(name, e))?.first().copied();
    match first {
        Some(b'{') => stream_json(name, input, out),
        None => Ok(()),
        Some(_) => {
            let mut whole = ManifestReader::new();
            whole.add_reader(name, input)?;
            for object in whole.finish() {
                let pointer = object.origin.pointer.clone();
                let document = object.origin.document;
                out.add(name, document, pointer, object.object)?;
            }
            Ok(())
        }
    }
}

/// Skip whitespace and a byte-order mark.
fn skip_whitespace(input: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buf = input.fill_buf()?;
        if buf.starts_with("\u{feff}".as_bytes()) {
            input.consume(3);
            continue;
        }
        let n = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
        if n == 0 {
            return Ok(());
        }
        input.consume(n);
    }
}

/// JSON documents one after another, each an object or a List whose items are streamed.
fn stream_json(name: &str, mut input: impl BufRead, out: &mut Pager) -> Result<(), ManifestError> {
    for document in 1.. {
        skip_whitespace(&mut input).map_err(|e| read_error(name, e))?;
        if input.fill_buf().map_err(|e| read_error(name, e))?.is_empty() {
            return Ok(());
        }
        // A deserializer per document over the same reader: serde_json reads an object exactly to its
        // closing brace, so the next document starts where this one ended.
        let mut de = serde_json::Deserializer::from_reader(&mut input);
        let mut failed = None;
        let seed = DocumentSeed { name, document, out, failed: &mut failed };
        if let Err(e) = seed.deserialize(&mut de) {
            return Err(failed.unwrap_or_else(|| ManifestError::Document {
                file: name.to_owned(),
                document,
                pointer: String::new(),
                reason: format!("not valid JSON: {e}"),
            }));
        }
    }
    Ok(())
}

/// One JSON document: an object (a `List`'s `items` streamed one by one).
struct DocumentSeed<'a> {
    name: &'a str,
    document: usize,
    out: &'a mut Pager,
    /// Why a sink call failed (kept typed; serde only carries text).
    failed: &'a mut Option<ManifestError>,
}

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes object or List")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut rest = serde_json::Map::new();
        let mut listed = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "items" && !listed {
                listed = true;
                map.next_value_seed(ItemsSeed {
                    name: self.name,
                    document: self.document,
                    out: &mut *self.out,
                    failed: &mut *self.failed,
                })?;
            } else {
                rest.insert(key, map.next_value()?);
            }
        }
        if !listed {
            let sent = self.out.add(self.name, self.document, String::new(), Value::Object(rest));
            if let Err(e) = sent {
                *self.failed = Some(e);
                return Err(serde::de::Error::custom("object refused"));
            }
        }
        Ok(())
    }
}

/// A `List`'s `items`, each handed over as it is parsed.
struct ItemsSeed<'a> {
    name: &'a str,
    document: usize,
    out: &'a mut Pager,
    failed: &'a mut Option<ManifestError>,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of Kubernetes objects")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(()) // `items: null`: an empty List
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while let Some(item) = seq.next_element::<Value>()? {
            if let Err(e) = self.out.add(self.name, self.document, format!("/items/{i}"), item) {
                *self.failed = Some(e);
                return Err(serde::de::Error::custom("item refused"));
            }
            i += 1;
        }
        Ok(())
    }
}

/// Read every object of `paths` at once (for tests and small inputs).
pub async fn read_all_pages(paths: Vec<String>) -> Result<Vec<ManifestObject>, ManifestError> {
    let mut pages = InputPages::open(paths, PAGE_SIZE);
    let mut out = Vec::new();
    while let Some(page) = pages.next_page().await {
        out.extend(page?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    fn pod(name: &str) -> Value {
        serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "managedFields": [{"manager": "kubelet"}]},
            "spec": {"containers": [{"name": "app", "image": "reg/app:1"}]}})
    }

    #[tokio::test]
    async fn a_json_list_is_read_item_by_item_in_pages_without_managed_fields() {
        let dir = tempfile::tempdir().unwrap();
        let items: Vec<Value> = (0..7).map(|i| pod(&format!("p{i}"))).collect();
        let list = serde_json::json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {}});
        let file = write(dir.path(), "pods.json", &format!("\u{feff}\n{list}\n"));
        let mut pages = InputPages::open(vec![file.clone()], 3);
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        while let Some(page) = pages.next_page().await {
            let page = page.unwrap();
            sizes.push(page.len());
            all.extend(page);
        }
        assert_eq!(sizes, [3, 3, 1]);
        assert_eq!(all[4].name, "p4");
        assert_eq!(all[4].origin.pointer, "/items/4");
        assert_eq!(all[4].origin.file, file);
        assert!(all[4].object["metadata"].get("managedFields").is_none());
    }

    #[tokio::test]
    async fn json_objects_one_after_another_yaml_and_directories_are_read_too() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.json", &format!("{}\n{}", pod("one"), pod("two")));
        write(
            dir.path(),
            "b.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: three}\nspec: {containers: []}\n",
        );
        let objects = read_all_pages(vec![dir.path().display().to_string()]).await.unwrap();
        let names: Vec<&str> = objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["one", "two", "three"]);
        assert_eq!(objects[1].origin.document, 2);
    }

    #[tokio::test]
    async fn broken_input_is_an_error_naming_file_document_and_item() {
        let dir = tempfile::tempdir().unwrap();
        let truncated = write(
            dir.path(),
            "cut.json",
            &format!("{{\"kind\": \"List\", \"items\": [{}, {{\"apiVer", pod("a")),
        );
        let e = read_all_pages(vec![truncated]).await.unwrap_err().to_string();
        assert!(e.contains("cut.json") && e.contains("document 1") && e.contains("not valid JSON"), "{e}");
        let not_object = write(dir.path(), "odd.json", "{\"kind\": \"List\", \"items\": [42]}");
        let e = read_all_pages(vec![not_object]).await.unwrap_err().to_string();
        assert!(
            e.contains("odd.json") && e.contains("/items/0") && e.contains("expected a Kubernetes object"),
            "{e}"
        );
        let e =
            read_all_pages(vec![dir.path().join("missing.json").display().to_string()]).await.unwrap_err();
        assert!(e.to_string().contains("missing.json"), "{e}");
    }
}
