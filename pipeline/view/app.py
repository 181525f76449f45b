"""The viewer's web app (Starlette): read-only pages over a run directory. Every page is a GET with its state in
the URL, so a filter or a row can be shared in a review:

  /                                  the run: stages, row counts, the report
  /stage/verify?outcome=failed&check=answer&q=refund&page=2   a filtered list, with counts per filter value
  /stage/verify/row/ID               one trajectory: steps, messages by training mask, checks, judgments
  /stage/verify/compare/ID           a reflection or feedback retry beside the row it was made from
  /task/TASK_ID                      the task row and every trajectory of it, per stage
  /report                            the run report, its examples linked to rows
"""

from pathlib import Path

import pyarrow.parquet as pq
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from pipeline import report, rundir
from pipeline.stages import STAGE_DIRS
from pipeline.view import present
from pipeline.view.catalog import FACETS, Catalogs, Filters

HERE = Path(__file__).parent
TRAJECTORY_STAGES = ("sample", "verify", "curate")
FACET_TITLES = {"source": "source", "domain": "domain", "format": "format", "outcome": "passed / failed", "check": "failing check",
                "error": "error kind", "verdict": "judge verdict", "kind": "made by", "split": "split"}


def create_app(run_dir: Path) -> Starlette:
    run_dir = Path(run_dir)
    catalogs = Catalogs(run_dir)
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))
    templates = Jinja2Templates(env=env)

    def page(request, name: str, status: int = 200, **context):
        context.update(run_name=run_dir.name, stages=catalogs.stages())
        return templates.TemplateResponse(request, name, context, status_code=status)

    def catalog(stage: str):
        if stage not in STAGE_DIRS or stage not in catalogs.stages():
            raise HTTPException(404, f"no stage {stage!r} in {run_dir} (stages with shards: {', '.join(catalogs.stages()) or 'none'})")
        return catalogs.get(stage)

    async def index(request):
        counts = {stage: sum(pq.read_metadata(p).num_rows for p in rundir.stage_files(run_dir, stage)) for stage in catalogs.stages()}
        return page(request, "index.html", counts=counts, has_report=(run_dir / "report.json").exists())

    async def listing(request):
        stage = request.path_params["stage"]
        found = catalog(stage)
        filters = Filters.from_query(request.query_params)
        result = found.select(filters)
        return page(request, "list.html", stage=stage, filters=filters, result=result, facet_titles=FACET_TITLES,
                    tasks=stage == "synthesize")

    async def row(request):
        stage, row_id = request.path_params["stage"], request.path_params["row_id"]
        found = catalog(stage)
        data = found.read_row(row_id)
        if data is None:
            raise HTTPException(404, f"no row {row_id!r} in the {stage} stage of {run_dir}")
        if stage == "synthesize":
            return task_page(request, data["id"])
        return page(request, "row.html", stage=stage, row=data, steps=present.steps(data), messages=present.messages(data),
                    lineage=present.lineage(data), meta=present.json_html(present.meta_without_lineage(data)),
                    ground_truth=present.json_html(data.get("ground_truth")),
                    children=found.entries("parent_id", row_id), siblings=[e for e in found.entries("task_id", data["task_id"]) if e["id"] != row_id])

    async def compare(request):
        stage, row_id = request.path_params["stage"], request.path_params["row_id"]
        found = catalog(stage)
        child = found.read_row(row_id)
        lineage = present.lineage(child) if child else None
        parent = found.read_row(lineage["parent_id"]) if lineage and lineage["parent_id"] else None
        if parent is None:
            raise HTTPException(404, f"row {row_id!r} of {stage} has no parent row in this stage to compare with")
        sides = [{"row": r, "steps": present.steps(r), "messages": present.messages(r)} for r in (parent, child)]
        return page(request, "compare.html", stage=stage, sides=sides, lineage=lineage)

    def task_page(request, task_id: str):
        task = catalogs.get("synthesize").read_row(task_id) if "synthesize" in catalogs.stages() else None
        per_stage = {s: catalogs.get(s).entries("task_id", task_id) for s in TRAJECTORY_STAGES if s in catalogs.stages()}
        if task is None and not any(per_stage.values()):
            raise HTTPException(404, f"no task {task_id!r} in {run_dir}")
        fields = {k: present.json_html(task[k]) for k in ("tools", "environment", "ground_truth", "solution", "meta")} if task else {}
        return page(request, "task.html", task=task, task_id=task_id, fields=fields, per_stage=per_stage)

    async def task(request):
        return task_page(request, request.path_params["task_id"])

    async def report_page(request):
        if not (run_dir / "report.json").exists():
            raise HTTPException(404, f"{run_dir} has no report yet (`trajforge report {run_dir}` writes one)")
        return HTMLResponse(report.render(run_dir, link_base=""))

    async def stylesheet(request):
        return Response(present.stylesheet(), media_type="text/css")

    async def not_found(request, exc: HTTPException):
        return page(request, "error.html", status=exc.status_code, message=exc.detail)

    routes = [
        Route("/", index), Route("/stage/{stage}", listing), Route("/stage/{stage}/row/{row_id}", row),
        Route("/stage/{stage}/compare/{row_id}", compare), Route("/task/{task_id}", task), Route("/report", report_page),
        Route("/highlight.css", stylesheet), Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    env.globals.update(facets=FACETS)
    return Starlette(routes=routes, exception_handlers={HTTPException: not_found})
