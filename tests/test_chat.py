"""Chat templates: the checkpoint's own (jinja, rendered as transformers renders it) or a
preset's turns, with the recipe's system prompt where the template puts it."""

from __future__ import annotations

import json

import pytest

from reasonlab.chat import ChatTemplate
from reasonlab.data import render_prompt
from reasonlab.schema import DataSpec

# Gemma 3's template as google/gemma-3-1b-it ships it (shortened to the text-only branch)
GEMMA3_IT = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = \"\" -%}"
    "{%- set loop_messages = messages -%}{%- endif -%}{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}{%- endif -%}"
    "{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}{%- else -%}{%- set role = message['role'] -%}"
    "{%- endif -%}{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{'<start_of_turn>model\n'}}{%- endif -%}")
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def spec(**keys):
    return DataSpec(source="arithmetic", template="{question}", **keys)


def test_the_checkpoints_gemma_template_puts_the_system_prompt_in_the_first_user_turn():
    template = ChatTemplate.jinja(GEMMA3_IT, bos_token="<bos>")
    text = render_prompt({"question": "2 + 3?"}, spec(system_prompt="Think first."), template)
    # the BOS text is dropped: reasonlab prepends the BOS id itself
    assert text == "<start_of_turn>user\nThink first.\n\n2 + 3?<end_of_turn>\n<start_of_turn>model\n"
    # the built-in turns give the same prompt for Gemma
    from reasonlab_plugins.models_checkpoint import GEMMA_CHAT

    assert render_prompt({"question": "2 + 3?"}, spec(system_prompt="Think first."), ChatTemplate.turns(GEMMA_CHAT)) == text
    assert render_prompt({"question": "2 + 3?"}, spec(system_prompt="Think first."), GEMMA_CHAT) == text  # a plain string


def test_a_template_with_a_system_role_gets_it_and_chat_false_keeps_plain_text():
    template = ChatTemplate.jinja(CHATML)
    text = render_prompt({"question": "2 + 3?"}, spec(system_prompt="Be brief."), template)
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2 + 3?<|im_end|>\n<|im_start|>assistant\n"
    assert render_prompt({"question": "2 + 3?"}, spec(system_prompt="Be brief.", chat=False), template) == \
        "Be brief.\n\n2 + 3?"


def test_a_template_that_does_not_parse_or_refuses_is_a_clear_error():
    from jinja2 import TemplateSyntaxError

    from reasonlab.errors import ModelError

    with pytest.raises(TemplateSyntaxError):
        ChatTemplate.jinja("{% for m in messages %}")
    refusing = ChatTemplate.jinja("{{ raise_exception('no system role') }}")
    with pytest.raises(ModelError, match="refused the prompt: no system role"):
        refusing.render("hi", "sys")


@pytest.mark.slow
def test_an_it_checkpoint_brings_its_own_template(tmp_path):
    from test_checkpoints import write_tiny_gemma3_checkpoint

    from reasonlab.errors import ModelError
    from reasonlab.plugins import get_plugins
    from reasonlab.schema import ModelSpec

    write_tiny_gemma3_checkpoint(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "tokenizer_config.json").write_text(json.dumps({
        "chat_template": CHATML, "bos_token": {"content": "<bos>"}, "eos_token": "<eos>"}))
    load = get_plugins().registry("models").get("gemma3-1b-it")
    bundle = load(ModelSpec(preset="gemma3-1b-it", path=str(tmp_path / "ckpt"), dtype="float32"))
    assert bundle.chat_template.kind == "jinja"
    assert render_prompt({"question": "q"}, spec(), bundle.chat_template) == \
        "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
    (tmp_path / "ckpt" / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{% if %}"}))
    with pytest.raises(ModelError, match="chat template does not parse"):
        load(ModelSpec(preset="gemma3-1b-it", path=str(tmp_path / "ckpt"), dtype="float32"))
