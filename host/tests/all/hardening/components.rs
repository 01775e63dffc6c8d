//! Components written in the component text format, for what a Rust guest cannot be: a
//! plugin with several linear memories, and components importing interfaces at versions
//! or of kinds the host must refuse. Built from text at test time; nothing is committed
//! as `.wasm`.

/// The `impressox:plugin/types` records an event handler's exports use (structural types:
/// they match the host's as long as they have the same shape).
const TYPES_IMPORT: &str = r#"
  (type $types-inst (instance
    (type $pk (enum "feed-parser" "rule-processor" "scrape-parser" "notify-formatter" "task" "event-handler"))
    (export "plugin-kind" (type $pk-e (eq $pk)))
    (type $pi (record (field "name" string) (field "version" string) (field "kind" $pk-e) (field "description" string)))
    (export "plugin-info" (type $pi-e (eq $pi)))
    (type $f (record (field "name" string) (field "value" string)))
    (export "field" (type $f-e (eq $f)))
    (type $ev (record (field "stream" string) (field "id" string) (field "fields" (list $f-e)) (field "attempt" u32) (field "received-at-ms" s64)))
    (export "event" (type $ev-e (eq $ev)))
    (type $oc (variant (case "ack") (case "retry" string) (case "dead-letter" string)))
    (export "outcome" (type $oc-e (eq $oc)))
  ))
  (import "impressox:plugin/types@0.1.0" (instance $types (type $types-inst)))
  (alias export $types "plugin-info" (type $plugin-info))
  (alias export $types "event" (type $event))
  (alias export $types "outcome" (type $outcome))
"#;

/// An event handler named `name` that acks everything, plus `hogs` extra core instances
/// each holding a linear memory of `hog_mib` MiB: every memory under a per-memory cap of
/// more than `hog_mib`, all of them together far over it.
pub fn event_handler_with_memories(name: &str, hogs: usize, hog_mib: usize) -> Vec<u8> {
    assert!(name.len() < 16);
    let pages = hog_mib * 16;
    let hog_instances: String = (0..hogs)
        .map(|_| "(core instance (instantiate $Hog))\n")
        .collect();
    let text = format!(
        r#"(component
  {TYPES_IMPORT}
  (core module $Main
    (memory (export "memory") 2)
    (global $bump (mut i32) (i32.const 4096))
    ;; A bump allocator: the host asks for room for the event's strings.
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and
        (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get 2))))
      (global.set $bump (i32.add (local.get $p) (local.get 3)))
      (local.get $p))
    ;; plugin-info at 64: name (16, len), version (48, 5), kind 5 (event-handler), description (48, 0)
    (data (i32.const 16) "{name}")
    (data (i32.const 48) "0.1.0")
    (func (export "info") (result i32)
      (i32.store (i32.const 64) (i32.const 16))
      (i32.store (i32.const 68) (i32.const {len}))
      (i32.store (i32.const 72) (i32.const 48))
      (i32.store (i32.const 76) (i32.const 5))
      (i32.store8 (i32.const 80) (i32.const 5))
      (i32.store (i32.const 84) (i32.const 48))
      (i32.store (i32.const 88) (i32.const 0))
      (i32.const 64))
    ;; outcome at 128: ack
    (func (export "handle") (param i32 i32 i32 i32 i32 i32 i32 i64) (result i32)
      (global.set $bump (i32.const 4096))
      (i32.store8 (i32.const 128) (i32.const 0))
      (i32.const 128))
  )
  (core module $Hog (memory {pages}))
  (core instance $main (instantiate $Main))
  {hog_instances}
  (func $info (result $plugin-info)
    (canon lift (core func $main "info") (memory (core memory $main "memory")) (realloc (core func $main "cabi_realloc"))))
  (func $handle (param "event" $event) (result $outcome)
    (canon lift (core func $main "handle") (memory (core memory $main "memory")) (realloc (core func $main "cabi_realloc"))))
  (instance $iface (export "info" (func $info)) (export "handle" (func $handle)))
  (export "impressox:plugin/handle-event@0.1.0" (instance $iface))
)"#,
        len = name.len(),
    );
    wat::parse_str(text).expect("the test component's text parses")
}

/// A component that imports `import` (an instance with one function) and claims to be a
/// notify formatter. The import is refused before anything is linked, so the export
/// needs no functions.
pub fn formatter_importing(import: &str) -> Vec<u8> {
    let text = format!(
        r#"(component
  (import "{import}" (instance (export "f" (func))))
  (instance $i)
  (export "impressox:plugin/format-notification@0.1.0" (instance $i))
)"#
    );
    wat::parse_str(text).expect("the test component's text parses")
}
