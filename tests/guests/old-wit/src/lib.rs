//! A formatter built against a WIT version the host does not accept (0.2.0).

wit_bindgen::generate!({
    inline: r#"
        package impressox:plugin@0.2.0;
        interface format-notification {
            format: func(title: string) -> string;
        }
        world old { export format-notification; }
    "#,
});

struct Old;

impl exports::impressox::plugin::format_notification::Guest for Old {
    fn format(title: String) -> String {
        title
    }
}

export!(Old);
