"""How the gpu activities report failures to Temporal.

Bad input (a missing blob, a malformed request, an image whose mask has another size) fails the
activity with a non-retryable ``ApplicationError`` of type ``BadInput``: retrying cannot fix it,
and the workflow sees one clear line. Anything else (out of memory, a full disk, a worker going
away) is raised as it is and Temporal retries it under the activity's retry policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

BAD_INPUT = "BadInput"


def bad_input(message: str) -> ApplicationError:
    """A non-retryable failure carrying a one-line message."""
    return ApplicationError(" ".join(message.split()), type=BAD_INPUT, non_retryable=True)


def describe_validation_error(err: ValidationError, what: str) -> str:
    """One line naming each bad field, e.g. ``train.0.mask_uri: Field required``."""
    parts = []
    for item in err.errors():
        loc = ".".join(str(p) for p in item["loc"]) or "input"
        parts.append(f"{loc}: {item['msg']}")
    return f"bad {what}: " + "; ".join(parts)


def _input_error_types() -> tuple[type[BaseException], ...]:
    """Engine exceptions that mean "the input is wrong" (imported lazily: optional modules)."""
    from medloop_ml.blobs import BlobUriError
    from medloop_ml.io import ImageReadError
    from medloop_ml.probmap import ProbMapError

    types: list[type[BaseException]] = [
        BlobUriError, ImageReadError, ProbMapError, FileNotFoundError,
    ]
    try:
        from medloop_ml.data import DataError

        types.append(DataError)
    except ImportError:  # pragma: no cover - data.py is part of the package
        pass
    return tuple(types)


@contextmanager
def input_errors(what: str) -> Iterator[None]:
    """Turn validation and data errors raised inside the block into ``BadInput`` failures."""
    try:
        yield
    except ApplicationError:
        raise
    except ValidationError as err:
        raise bad_input(describe_validation_error(err, what)) from err
    except _input_error_types() as err:
        raise bad_input(f"bad {what}: {err}") from err
