"""Built-in plugins, registered first through the same hooks as third-party plugins."""
