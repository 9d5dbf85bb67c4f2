"""Kernel stack traces as data (being split by subject)."""

from kdx.model.stack.scan import (
    STACK_END_MAGIC,
    Backtrace,
    ExceptionFrame,
    FoundExceptionFrame,
    Frame,
    RawStack,
    StackOverflow,
    StackReader,
    StackSearch,
    StackText,
    WordLabel,
    backtrace,
    backtrace_from,
    check_stack_overflows,
    cpu_exception_frames,
    label_stack_words,
    raw_stack,
    references,
    stack_text,
    task_exception_frames,
)

__all__ = ["STACK_END_MAGIC", "Backtrace", "ExceptionFrame", "FoundExceptionFrame", "Frame",
           "RawStack", "StackOverflow", "StackReader", "StackSearch", "StackText", "WordLabel",
           "backtrace", "backtrace_from", "check_stack_overflows", "cpu_exception_frames",
           "label_stack_words", "raw_stack", "references", "stack_text",
           "task_exception_frames"]
