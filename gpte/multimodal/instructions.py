"""Instructions as data for universal (VLM2Vec-style) embedders: which words go with which task, on which side.

A universal embedder reads an instruction with every *query* and a plain representation prompt with every
*candidate* (Jiang et al. 2024, "VLM2Vec: Training Vision-Language Models for Massive Multimodal Embedding Tasks";
the MMEB task formats). The two sides must never be swapped: a query embedded with a candidate prompt lands in the
wrong region of the space. This module holds that knowledge as data:

* an :class:`Instruction` per task: the query template (``{text}`` marks where the query's own text goes; without
  it the text follows the instruction), the modalities each side must carry, and the candidate prompt;
* a :class:`InstructionSet` (name → instruction) with documented defaults (:data:`DEFAULT_INSTRUCTIONS`), saved
  with a model (``to_dict``/``from_dict``) so that training and inference use the same words;
* the rule for inputs with no task: both sides get the candidate prompt of their modality (symmetric
  representation, as for candidate–candidate similarity), never a query instruction.

Errors name the fix: an unknown task lists the known ones and :meth:`InstructionSet.register`; an input missing the
image or the text its task needs says which side and what to add.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from gpte.shared.errors import GpteError

__all__ = ["Instruction", "InstructionSet", "UnknownInstructionError", "InstructionInputError",
           "CANDIDATE_PROMPTS", "DEFAULT_INSTRUCTIONS", "Modality"]

Modality = Literal["text", "image", "image+text"]
Side = Literal["query", "candidate"]

CANDIDATE_PROMPTS: dict[str, str] = {
    "image": "Represent the given image.",
    "text": "Represent the given text.",
    "image+text": "Represent the given image with the following text: {text}",
}


class UnknownInstructionError(GpteError, KeyError):
    """A task name that the instruction set does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class InstructionInputError(GpteError, ValueError):
    """An input that lacks the image or the text its task needs on that side."""


@dataclass(frozen=True)
class Instruction:
    name: str
    query: str  # query template: "{text}" is replaced by the query's text; without it the text is appended
    query_modality: Modality  # what every query of this task carries
    candidate_modality: Modality  # what every candidate carries
    description: str = ""

    def __post_init__(self) -> None:
        for side in ("query_modality", "candidate_modality"):
            if getattr(self, side) not in CANDIDATE_PROMPTS:
                raise ValueError(f"instruction {self.name!r}: {side} must be one of {sorted(CANDIDATE_PROMPTS)}")
        if not self.query.strip():
            raise ValueError(f"instruction {self.name!r}: the query template is empty")


def _defaults() -> dict[str, Instruction]:
    items = [
        Instruction("text-to-image", "Find an image that matches the given caption: {text}", "text", "image",
                    "caption → image retrieval"),
        Instruction("image-to-text", "Find a caption that describes the given image.", "image", "text",
                    "image → caption retrieval"),
        Instruction("image-classification", "Represent the given image for classification.", "image", "text",
                    "image → class name (candidates are the class names)"),
        Instruction("image-question", "Represent the given image with the following question: {text}",
                    "image+text", "text", "image + question → answer (VQA as retrieval)"),
        Instruction("composed-image", "Find an image that looks like the given image with this change: {text}",
                    "image+text", "image", "image + modification text → image (composed image retrieval)"),
        Instruction("text-to-text", "Find a text that answers or matches the given text: {text}", "text", "text",
                    "text → text retrieval"),
    ]
    return {i.name: i for i in items}


DEFAULT_INSTRUCTIONS: dict[str, Instruction] = _defaults()


@dataclass
class InstructionSet:
    """Task name → :class:`Instruction`; saved with a model. Starts from :data:`DEFAULT_INSTRUCTIONS`."""

    instructions: dict[str, Instruction] = field(default_factory=lambda: dict(DEFAULT_INSTRUCTIONS))

    def register(self, instruction: Instruction, *, replace: bool = False) -> None:
        if instruction.name in self.instructions and not replace:
            raise ValueError(f"instruction {instruction.name!r} exists; pass replace=True to change it")
        self.instructions[instruction.name] = instruction

    def get(self, task: str) -> Instruction:
        try:
            return self.instructions[task]
        except KeyError:
            known = ", ".join(sorted(self.instructions))
            raise UnknownInstructionError(
                f"no instruction for task {task!r}; known tasks: {known}. Register one with "
                "InstructionSet.register(Instruction(name, query_template, query_modality, candidate_modality))"
            ) from None

    def prompt(self, side: Side, task: str | None, has_image: bool, has_text: bool, text: str = "") -> str:
        """The text an input is embedded with (the image, if any, is passed beside it).

        Query side with a task: the task's template with ``text`` filled in. Candidate side, or no task: the
        candidate prompt of the input's own modality. Raises :class:`InstructionInputError` when the input lacks
        what the task needs on this side.
        """
        if side not in ("query", "candidate"):
            raise ValueError(f"side must be 'query' or 'candidate' (got {side!r})")
        modality = _modality(has_image, has_text, side, task)
        if task is not None:
            inst = self.get(task)
            need = inst.query_modality if side == "query" else inst.candidate_modality
            if need != modality:
                raise InstructionInputError(
                    f"task {task!r} needs {need} on the {side} side, got {modality}: "
                    + _fix(need, modality, side))
            if side == "query":
                return _fill(inst.query, text)
        return _fill(CANDIDATE_PROMPTS[modality], text)

    def to_dict(self) -> dict[str, Any]:
        return {name: asdict(inst) for name, inst in sorted(self.instructions.items())}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InstructionSet:
        return cls({name: Instruction(**fields) for name, fields in data.items()})


def _modality(has_image: bool, has_text: bool, side: str, task: str | None) -> Modality:
    if has_image and has_text:
        return "image+text"
    if has_image:
        return "image"
    if has_text:
        return "text"
    raise InstructionInputError(f"an empty {side} input (no image and no text){f' for task {task!r}' if task else ''}"
                                ": give an image, a text, or both")


def _fix(need: str, got: str, side: str) -> str:
    if need == "image+text":
        return f"pass an (image, text) pair on the {side} side"
    if need == "image":
        return f"pass an image{' without text' if got == 'image+text' else ''} on the {side} side"
    return f"pass a text{' without an image' if got == 'image+text' else ''} on the {side} side"


def _fill(template: str, text: str) -> str:
    if "{text}" in template:
        return template.replace("{text}", text).rstrip()
    return f"{template} {text}".rstrip() if text else template
