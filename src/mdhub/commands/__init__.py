"""Sub-commands of the ``mdhub`` CLI; each module's ``register(subparsers)`` adds its parsers."""
