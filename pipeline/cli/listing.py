"""The commands that list what trajforge has (generators, tools, checks, formats, views, environment kinds)
and manage the embedded local teacher."""

import json

from pipeline.cli.common import load_config
from pipeline.errors import UserError


def _list_tools(config_path: str | None, overrides: list[str]) -> None:
    """Every tool a config can reach, with its schema and where it comes from (its environments are opened:
    servers started and listed, modules imported)."""
    from pipeline.environments import Toolbox, open_toolbox

    toolbox = Toolbox()
    if config_path:
        config, _ = load_config(config_path, overrides)
        toolbox = open_toolbox(config, None, "list")
    try:
        for tool in toolbox.tools.values():
            tags = " [read-only]" if tool.read_only and tool.source != "builtin" else ""
            shown = f" (models see {tool.wire_name})" if tool.wire_name != tool.name else ""
            print(f"{tool.name}{shown}  from {tool.source}{tags}\n    {tool.description}\n    parameters: {json.dumps(tool.parameters, ensure_ascii=False)}")
    finally:
        toolbox.close()


def cmd_list(args) -> int:
    from pipeline import plugins

    if args.what == "tools":
        _list_tools(args.config, args.set)
    elif args.config:
        raise UserError(f"trajforge list {args.what} takes no CONFIG (only `trajforge list tools CONFIG` does)")
    elif args.what == "generators":
        from pipeline.synthesize.generators import GENERATORS

        for g in GENERATORS.values():
            print(f"{g.name:<14} domain={g.domain:<12} tools={','.join(g.tools):<26} {g.description}  [{plugins.origin('generators', g.name)}]")
    elif args.what == "checks":
        from pipeline.verify.checks import CHECKS

        print("\n".join(f"{name:<16} [{plugins.origin('checks', name)}]" for name in CHECKS))
    elif args.what == "views":
        from pipeline.curate.views import VIEWS

        print("\n".join(f"{name:<16} [{plugins.origin('views', name)}]" for name in VIEWS))
    elif args.what == "environments":
        from pipeline.environments import FACTORIES

        kinds = [("mcp", "builtin: an MCP server over stdio or streamable HTTP"), ("python", "builtin: a Python module of tool functions")]
        kinds += [(name, plugins.origin("environments", name)) for name in FACTORIES]
        print("\n".join(f"{name:<16} [{origin}]" for name, origin in kinds))
    else:
        from pipeline.formats import FORMATS

        print("\n".join(FORMATS))
    return 0


def cmd_local_teacher(args) -> int:
    from pipeline.llm import local

    if args.action == "start":
        state = local.start_manual(args.model, args.n_ctx)
        print(f"local teacher: {state['model']} at {state['base_url']} (pid {state['pid']}, log {state['log']})")
    elif args.action == "stop":
        state = local.stop_manual()
        print(f"local teacher stopped (pid {state['pid']})" if state else "local teacher: not running")
    elif args.action == "check":
        print(local.smoke_test(args.model))
    else:
        state = local.running()
        print(f"local teacher: {state['model']} at {state['base_url']} (pid {state['pid']})" if state else "local teacher: not running")
    return 0
