"""Instructions as data for universal embedders: sides, the no-task rule, errors, persistence."""

from __future__ import annotations

import pytest

from gpte.multimodal.instructions import (
    Instruction,
    InstructionInputError,
    InstructionSet,
    UnknownInstructionError,
)


def test_query_and_candidate_sides_differ():
    s = InstructionSet()
    q = s.prompt("query", "text-to-image", has_image=False, has_text=True, text="a red car")
    c = s.prompt("candidate", "text-to-image", has_image=True, has_text=False)
    assert q == "Find an image that matches the given caption: a red car"
    assert c == "Represent the given image."
    assert s.prompt("query", "image-to-text", has_image=True, has_text=False) == (
        "Find a caption that describes the given image.")
    assert s.prompt("candidate", "image-to-text", has_image=False, has_text=True, text="a dog") == (
        "Represent the given text. a dog")


def test_no_task_gets_the_candidate_prompt_on_both_sides():
    s = InstructionSet()
    for side in ("query", "candidate"):
        assert s.prompt(side, None, has_image=True, has_text=False) == "Represent the given image."
        assert s.prompt(side, None, has_image=True, has_text=True, text="in red") == (
            "Represent the given image with the following text: in red")


def test_errors_name_the_fix():
    s = InstructionSet()
    with pytest.raises(UnknownInstructionError, match="known tasks: .*text-to-image.*register"):
        s.prompt("query", "text-to-video", has_image=False, has_text=True, text="x")
    with pytest.raises(InstructionInputError, match=r"needs image\+text on the query side, got text: pass an "
                                                    r"\(image, text\) pair"):
        s.prompt("query", "image-question", has_image=False, has_text=True, text="what colour?")
    with pytest.raises(InstructionInputError, match="needs image on the candidate side, got text"):
        s.prompt("candidate", "text-to-image", has_image=False, has_text=True, text="x")
    with pytest.raises(InstructionInputError, match="no image and no text"):
        s.prompt("query", None, has_image=False, has_text=False)
    with pytest.raises(ValueError, match="exists"):
        s.register(Instruction("text-to-image", "x {text}", "text", "image"))


def test_round_trip_and_custom_tasks():
    s = InstructionSet()
    s.register(Instruction("sketch-to-photo", "Find the photo this sketch shows.", "image", "image"))
    again = InstructionSet.from_dict(s.to_dict())
    assert again.to_dict() == s.to_dict()
    assert again.prompt("query", "sketch-to-photo", has_image=True, has_text=False) == (
        "Find the photo this sketch shows.")
