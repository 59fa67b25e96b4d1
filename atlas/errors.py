"""The AtlasError hierarchy and the exit code each failure maps to."""


class AtlasError(Exception):
    """A failure atlas explains in one line; `exit_code` is what the CLI exits with."""

    exit_code = 1


class ConfigError(AtlasError):
    """The configuration (file, environment or options) is invalid."""

    exit_code = 2


class TemplateError(AtlasError):
    """A query or watch template did not render to valid JSON."""

    exit_code = 2


class DataError(AtlasError):
    """Input data (a CSV row, a truth file) is invalid."""

    exit_code = 2


class ToolMissing(AtlasError):
    """A program atlas needs (java, mvn) is not installed."""

    exit_code = 2


class EsUnavailable(AtlasError):
    """Elasticsearch cannot be reached or did not start."""

    exit_code = 1


class EsQueryRejected(AtlasError):
    """Elasticsearch answered a request with an error."""

    exit_code = 1


class OutputError(AtlasError):
    """One or more outputs (notifications, files) failed."""

    exit_code = 1
