"""ATIF, the Agent Trajectory Interchange Format (Harbor), read with the `atif` package's own models: a
document `{schema_version, agent: {name, model_name, tool_definitions}, steps: [...]}` whose steps come from
the system, the user or the agent; an agent step holds its message, reasoning, tool calls and the
observation results that answer them (`source_call_id`). Steps copied from another trajectory for context
(`is_copied_context`) are kept as context and declared untrained, as ATIF asks."""

from pipeline.ingest.build import Unmappable, message, tool_call


def _text(content) -> str:
    if isinstance(content, list):
        return "".join(part.text or "" for part in content if part.type == "text")
    return content or ""


def conversation(record) -> dict:
    import pydantic
    from atif import Trajectory

    try:
        trajectory = Trajectory.model_validate(record)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise Unmappable(f"not an ATIF trajectory: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    messages, untrained, models = [], [], []
    for step in trajectory.steps:
        if step.source != "agent":
            messages.append(message(step.source, content=_text(step.message)))
            continue
        calls = [tool_call(c.tool_call_id, c.function_name, c.arguments) for c in step.tool_calls or []]
        if step.is_copied_context:
            untrained.append(len(messages))
        messages.append(message("assistant", content=_text(step.message) or None, reasoning_content=step.reasoning_content,
                                tool_calls=calls or None))
        models.append(step.model_name)
        ids = [c["id"] for c in calls]
        for result in (step.observation.results if step.observation else []):
            call_id = result.source_call_id or (ids[0] if len(ids) == 1 else None)
            if call_id is None:
                raise Unmappable(f"step {step.step_id}: an observation result answers no tool call")
            messages.append(message("tool", tool_call_id=call_id, content=_text(result.content)))
    model = next((m for m in models if m), None) or trajectory.agent.model_name
    return {"messages": messages, "tools": trajectory.agent.tool_definitions, "model": model, "untrained": untrained}
