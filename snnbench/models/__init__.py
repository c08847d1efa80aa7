"""Named architectures, one file per family; each module registers its names at import."""
