"""The code_safety check: static analysis (Python's `ast`, not string search) of every code action (CodeAct
steps and python tool calls). It flags code that spawns processes, reaches the network, reads or lists system
paths, reads the environment, or evaluates code it did not write: the sandbox contains such code, so replay
reproduces its error observations, but a row that does it teaches a model to do it."""

import ast

from pipeline.verify.codecalls import code_of

PROCESS_MODULES = {"subprocess", "pty", "pexpect", "sh", "multiprocessing", "ctypes", "cffi"}
NETWORK_MODULES = {"socket", "ssl", "urllib", "urllib2", "urllib3", "http", "httplib", "requests", "httpx", "aiohttp",
                   "ftplib", "smtplib", "telnetlib", "poplib", "imaplib", "xmlrpc", "paramiko", "websocket", "websockets",
                   "pycurl", "asyncssh", "webbrowser"}
PROCESS_CALLS = {"system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp", "kill", "killpg", "startfile"}
PROCESS_PREFIXES = ("spawn", "exec")
ENVIRONMENT = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
SYSTEM_ROOTS = {"etc", "proc", "sys", "root", "home", "var", "dev", "usr", "bin", "sbin", "boot", "lib", "lib64", "opt",
                "run", "srv", "mnt", "media", "snap", "Users", "System", "private"}
DYNAMIC = {"eval", "exec", "compile", "__import__", "breakpoint"}


def _root(name: str) -> str:
    return name.split(".")[0]


def _system_path(value) -> bool:
    if not isinstance(value, str) or not value:
        return False
    if value.startswith("~") or "../" in value or value == "/":
        return True
    parts = value.split("/")
    return value.startswith("/") and len(parts) > 1 and parts[1] in SYSTEM_ROOTS


class _Finder(ast.NodeVisitor):
    """Collects (line, what) for every unsafe construct; `modules` maps local names to the modules they are."""

    def __init__(self):
        self.found: list[tuple[int, str]] = []
        self.modules: dict[str, str] = {}

    def flag(self, node, what: str) -> None:
        self.found.append((getattr(node, "lineno", 0), what))

    def _imported(self, node, module: str, names: list[str]) -> None:
        root = _root(module)
        if root in PROCESS_MODULES:
            self.flag(node, f"imports {module} (process spawning or native code)")
        elif root in NETWORK_MODULES:
            self.flag(node, f"imports {module} (network access)")
        elif root in ("os", "posix") and any(n in PROCESS_CALLS or n.startswith(PROCESS_PREFIXES) for n in names):
            self.flag(node, f"imports a process call from {module}")
        elif root in ("os", "posix") and any(n in ENVIRONMENT for n in names):
            self.flag(node, f"imports the environment from {module}")

    def visit_Import(self, node):
        for alias in node.names:
            self.modules[alias.asname or _root(alias.name)] = alias.name if alias.asname else _root(alias.name)
            self._imported(node, alias.name, [])
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        module = node.module or ""
        for alias in node.names:
            self.modules[alias.asname or alias.name] = f"{module}.{alias.name}"
        self._imported(node, module, [a.name for a in node.names])
        self.generic_visit(node)

    def visit_Attribute(self, node):
        base = node.value.id if isinstance(node.value, ast.Name) else None
        module = self.modules.get(base, "")
        if _root(module) in ("os", "posix"):
            if node.attr in ENVIRONMENT:
                self.flag(node, f"reads the environment ({base}.{node.attr})")
            elif node.attr in PROCESS_CALLS or node.attr.startswith(PROCESS_PREFIXES):
                self.flag(node, f"spawns a process ({base}.{node.attr})")
        self.generic_visit(node)

    def visit_Call(self, node):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else None
        if name in DYNAMIC and not all(isinstance(a, ast.Constant) for a in node.args) or name in ("__import__", "breakpoint"):
            self.flag(node, f"evaluates code it did not write ({name})")
        if isinstance(func, ast.Attribute) and func.attr == "import_module":
            self.flag(node, "imports a module by name (importlib)")
        if name == "getattr" and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in ("os", "builtins", "__builtins__", "subprocess"):
            self.flag(node, f"looks up {node.args[0].id} attributes dynamically")
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                arg = arg.values[0]  # f"/etc/{name}": the fixed start of the path
            elif isinstance(arg, ast.BinOp) and isinstance(arg.left, ast.Constant):
                arg = arg.left  # "/etc/" + name, Path("/etc") / name
            if isinstance(arg, ast.Constant) and _system_path(arg.value):
                self.flag(node, f"touches the system path {arg.value!r}")
        if isinstance(func, ast.Attribute) and func.attr in ("home", "expanduser"):
            self.flag(node, f"touches the home directory ({func.attr})")
        self.generic_visit(node)


def code_problems(code: str) -> list[tuple[int, str]]:
    """(line, what) for every unsafe construct in `code`; unparseable code has none (it never ran)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return []
    finder = _Finder()
    finder.visit(tree)
    return finder.found


def unsafe_code_problem(row: dict) -> str | None:
    for step in row["steps"]:
        code = code_of(step)
        problems = code_problems(code) if code else []
        if problems:
            line, what = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            return f"step {step['index']}, line {line}: {what}{more}"
    return None
