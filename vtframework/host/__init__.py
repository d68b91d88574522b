"""The host: configuration, presets, the plugin host, and the app they build together."""
