"""What the schemathesis checks need to know about a generated case (shared by the pytest checks and ``st run``'s hooks).

Kept apart from ``schemathesis_hooks``: importing that module registers its
auth provider for every schemathesis run in the process.
"""

from __future__ import annotations

from schemathesis.core.mutations import OperatorKind
from schemathesis.core.parameters import ParameterLocation


def leaves_out_authorization(case) -> bool:
    """Whether ``case`` is a negative one made by removing the ``Authorization`` header.

    Such a case tests the server's 401; giving it the admin's token anyway
    would make it a valid request, and its 200 a false "accepted negative data".
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return False
    for mutation in getattr(meta.phase.data, "mutations", None) or ():
        # Schemathesis says it either way: the name dropped from the headers' ``required``
        # (negated), or the required property removed.
        removed = mutation.original_value
        names = removed if isinstance(removed, list) else [removed]
        if (
            mutation.parameter_location == ParameterLocation.HEADER
            and "Authorization" in names
            and (
                "required" in mutation.keywords or mutation.operator == OperatorKind.REMOVE_REQUIRED_PROPERTY
            )
        ):
            return True
    return False
