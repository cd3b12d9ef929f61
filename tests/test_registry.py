"""The typed registries: names, duplicates, unknown names, validation."""

import pytest

from neuroplug.registry import (
    DuplicateNameError,
    Entry,
    NameClashError,
    Register,
    RegistrationError,
    Registry,
    UnknownNameError,
)


def test_unknown_name_lists_known_names():
    reg = Registry("layer")
    reg.commit([Entry("dense", object, "layers"), Entry("conv", object, "layers")])
    with pytest.raises(
        UnknownNameError,
        match=r"Unknown layer 'cnov'. Known layers: conv, dense\..*Received: layer='cnov'",
    ):
        reg.get("cnov")


def test_unknown_name_mentions_failed_plugins():
    reg = Registry("backend")
    reg.note_failure("torchy", "ImportError: no module named torch")
    with pytest.raises(UnknownNameError, match="torchy: ImportError"):
        reg.get("torch")


def test_duplicate_name_fails_closed_and_names_both_plugins():
    reg = Registry("layer")
    reg.commit([Entry("lrn", object, "first-plugin")])
    register = Register(reg, "second-plugin")
    register("lrn", int)  # accepted here, contested once committed
    assert reg.commit(register.staged) == ["lrn"]
    with pytest.raises(
        NameClashError, match=r"'lrn'.*'first-plugin' and 'second-plugin'"
    ) as info:
        reg.get("lrn")
    assert info.value.plugin == "second-plugin" and isinstance(
        info.value, DuplicateNameError
    )
    assert "lrn" not in reg and reg.clashes() == {
        "lrn": ["first-plugin", "second-plugin"]
    }
    reg.remove_plugin("first-plugin")
    assert reg.get("lrn") is int and reg.clashes() == {}


def test_duplicate_within_one_plugin_is_refused():
    register = Register(Registry("layer"), "p")
    register("a", object)
    with pytest.raises(DuplicateNameError):
        register("a", object)


@pytest.mark.parametrize("name", ["", "Dense", "conv:5", "1x", None, 3, "with space"])
def test_invalid_names(name):
    with pytest.raises(RegistrationError, match="invalid layer name"):
        Register(Registry("layer"), "p")(name, object)


def test_validator_errors_become_registration_errors():
    def validate(name, obj):
        if not isinstance(obj, int):
            raise TypeError("expected an int")

    register = Register(Registry("thing", validate), "plug")
    with pytest.raises(
        RegistrationError,
        match=r"Plugin 'plug' registered an invalid thing 'x': expected an int",
    ) as info:
        register("x", "not an int")
    assert isinstance(info.value.__cause__, TypeError)


def test_staged_entries_commit_and_remove():
    reg = Registry("layer")
    register = Register(reg, "p")
    register("a", 1)
    register("b", 2)
    assert "a" not in reg  # staged only
    reg.commit(register.staged)
    assert (
        reg.names() == ["a", "b"]
        and reg.get("b") == 2
        and reg.by_plugin("p") == ["a", "b"]
    )
    assert [e.name for e in reg] == ["a", "b"] and len(reg) == 2
    reg.remove_plugin("p")
    assert len(reg) == 0
