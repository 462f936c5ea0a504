"""Team routes: the teams under the server's team folders, and validation of a team file's YAML."""

from __future__ import annotations

import asyncio
from typing import Annotated

import yaml
from fastapi import APIRouter, Depends

from troupe.runtime.api import validate_team
from troupe.runtime.config import parse_team
from troupe.runtime.errors import TroupeError
from troupe.runtime.mcp_server.teams import find_teams
from troupe.runtime.server.auth import Principal, principal
from troupe.runtime.server.models import TeamAgent, TeamInfo, ValidateRequest, ValidateResponse
from troupe.runtime.server.sessions import State

router = APIRouter(tags=["teams"])
Reader = Annotated[Principal, Depends(principal)]


@router.get("/teams", response_model=list[TeamInfo])
async def list_teams(state: State, who: Reader) -> list[TeamInfo]:
    found = await asyncio.to_thread(find_teams, state.teams.roots)
    return [TeamInfo(name=t.team.name if t.team else None, path=t.relative,
                     description=t.team.description if t.team else "", error=t.error,
                     agents=[TeamAgent(id=a.id, role=a.role or "", model=a.model or t.team.default_model) for a in t.team.agents]
                     if t.team else [])
            for t in found]


@router.post("/teams/validate", response_model=ValidateResponse)
async def validate(body: ValidateRequest, state: State, who: Reader) -> ValidateResponse:
    """Parse and check a team file's YAML (tools exist, model profiles can be built); nothing is run."""
    try:
        data = yaml.safe_load(body.yaml)
        team = parse_team(data, source="<request>")
        validate_team(team, state.troupe.registry)
    except yaml.YAMLError as e:
        return ValidateResponse(ok=False, errors=[f"not YAML: {e}"])
    except TroupeError as e:
        return ValidateResponse(ok=False, errors=[e.message])
    return ValidateResponse(ok=True)


__all__ = ["router"]
