"""Multi-turn with a simulated user (APIGen-MT phase 2, tau-bench style): an endpoint plays the human from
the task's instruction, which only it sees, and reveals details only when the agent asks for them.

The agent (an llm teacher in the function_calling format) talks to the user by replying without a tool call.
Each such message goes to the simulated user: a reply continues the conversation (the agent's step becomes
an `ask_user` step whose observation is the reply, which follows as a `user` message); a reply containing
STOP ends it, and the agent's last message is the final answer. The conversation is bounded: after
`max_turns` user replies without STOP, or when the user's endpoint fails or sends nothing, the episode ends
with the reason on the row (`error`) and in `meta.conversation.ended_by`.

    teachers:
      - {name: agent, policy: llm, endpoint: gpt, formats: [function_calling],
         user_simulator: {endpoint: gpt, max_turns: 6}}
"""

from pipeline.llm.client import LLMClient, LLMError
from pipeline.sample.agent import add_usage

STOP = "###STOP###"
GREETING = "Hi! How can I help you today?"
USER_SYSTEM = (
    "You are role-playing a user who talks to a customer-service AI agent. Your goal, which only you know:\n{intent}\n\n"
    "Rules:\n- Begin by saying what you want in general terms, without every detail at once.\n"
    "- Give a detail (ids, email, names, reasons) only when the agent asks for it, exactly as your goal states it; "
    "never invent details your goal does not give.\n- Write one or two short sentences per turn, as the user; never act as the agent.\n"
    f"- Once the agent has done what you wanted, or said it cannot be done, reply with exactly {STOP}"
)
AGENT_SYSTEM = (
    "You are a customer-service agent with tools. Call a tool and its result comes back to you; calls that do not depend "
    "on each other may go in one reply. "
    "To talk to the user (to ask for details you need, or to report the outcome), reply with a message and no tool call. "
    "Act only on details the user gave you or the tools returned."
)
ENDINGS = ("satisfied", "max_turns", "user_failed", "agent_failed")


class UserSimulator:
    """One simulated user for one episode; `ended` says how the conversation ended."""

    def __init__(self, client: LLMClient, spec: dict, sample_key: list):
        self.client, self.spec, self.sample_key = client, spec, sample_key
        self.turns = 0
        self.opened = False
        self.ended: str | None = None

    def conversation(self, episode) -> list[dict]:
        """The episode from the user's side: its own turns are `assistant`, the agent's messages `user`;
        tool calls and results are not shown (nor, before the opening, the instruction in the user's seat)."""
        messages = [{"role": "system", "content": USER_SYSTEM.format(intent=episode.task["instruction"])}, {"role": "user", "content": GREETING}]
        for message in episode.messages[1:] if self.opened else []:
            if message["role"] == "user":
                messages.append({"role": "assistant", "content": message["content"]})
            elif message["role"] == "assistant" and not message.get("tool_calls") and message.get("content"):
                messages.append({"role": "user", "content": message["content"]})
        return messages

    async def say(self, episode) -> tuple[str | None, str | None]:
        """(the user's next message, None) or (None, why there is none)."""
        try:
            reply = await self.client.chat(self.conversation(episode), sample_key=self.sample_key + ["user", self.turns],
                                           temperature=self.spec["temperature"], max_tokens=self.spec["max_tokens"])
        except LLMError as exc:
            return None, f"the simulated user's endpoint failed: {exc}"
        add_usage(episode.usage, reply.usage())
        text = (reply.text or "").strip()
        return (text, None) if text else (None, "the simulated user sent an empty message")

    async def open(self, episode) -> bool:
        """Replace the instruction by the user's opening message (and the system prompt by the agent's);
        False when there is none (the episode ends with the reason)."""
        text, problem = await self.say(episode)
        if text is not None and STOP in text:
            problem = "the simulated user ended the conversation before the agent spoke"
        if problem:
            episode.error, self.ended = problem, "user_failed"
            return False
        episode.messages[0] = {"role": "system", "content": AGENT_SYSTEM}
        episode.messages[1] = {"role": "user", "content": text}
        self.opened = True
        return True

    async def continues(self, episode, step: dict) -> bool:
        """After the agent messaged the user (`step`, parsed as a final answer): True when the user replied and
        the conversation goes on; False when it is over (satisfied, or ended with `episode.error`)."""
        text, problem = await self.say(episode)
        if text is not None and STOP in text:
            self.ended = "satisfied"
            return False
        step["action_type"] = "ask_user"
        if problem:
            step["error"] = problem
            episode.error, self.ended = problem, "user_failed"
            return False
        self.turns += 1
        step["observation"] = text
        episode.messages.append({"role": "user", "content": text})
        if self.turns >= self.spec["max_turns"]:
            episode.error = f"the simulated user did not end the conversation within max_turns={self.spec['max_turns']}"
            self.ended = "max_turns"
            return False
        return True

    def record(self, episode) -> dict:
        """meta.conversation for the row."""
        return {"user_turns": self.turns, "ended_by": self.ended or "agent_failed", "user_model": self.client.model}
