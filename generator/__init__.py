"""Schema-driven code generator: schemas/*.json -> one model -> rendered artefacts in generated/."""
