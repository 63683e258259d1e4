"""The chest X-ray TFX pipeline: configuration, component graph, runners and the `cxr` command."""
