"""Errors a stage turns into one clear line and a non-zero exit code."""


class PipelineError(Exception):
    """Base class: the message names the file/column/field and the rule broken."""


class DataContractError(PipelineError):
    """Raw data differs from the committed contract (checksums, snapshot content)."""


class SchemaError(PipelineError):
    """A table breaks the declared schema (missing column, dtype, range, key)."""


class QualityGateError(PipelineError):
    """A full training run missed the quality thresholds."""


class ModelNotFoundError(PipelineError):
    """No model where one was expected (registry alias, run, export folder)."""
