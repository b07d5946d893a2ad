"""A retrieval chain over a folder of text files, with vecdb as the LangChain vector store.

    python examples/retrieval_chain.py FOLDER "your question" [--url http://127.0.0.1:8080]

Each ``*.txt`` / ``*.md`` file under FOLDER is split into chunks and stored in the collection ``handbook``
with the file's path as the chunk's source, so a changed file is replaced whole (``delete(source=...)``
then add). The server embeds texts with its default model (no Embeddings object, no API key).

The chain is the standard LangChain shape: retriever -> prompt -> chat model -> text. Without an LLM
here, ``answer_from_context`` stands in for the model: it answers with the passage that ranked first.
Give ``build_chain`` a real chat model (``ChatOpenAI(...)``, ``ChatOllama(...)``) to generate answers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompt_values import PromptValue
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough
from langchain_text_splitters import RecursiveCharacterTextSplitter

from vecdb_client.langchain import VecDBVectorStore

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer the question from the context only.\n\nContext:\n{context}"),
        ("human", "{question}"),
    ]
)


def load_folder(store: VecDBVectorStore, folder: Path) -> int:
    """(Re)index every text file of ``folder``: one source per file; returns the number of chunks."""
    splitter = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50)
    total = 0
    for path in sorted(p for p in folder.rglob("*") if p.suffix in {".txt", ".md"} and p.is_file()):
        source = str(path)
        store.delete(source=source)  # the file's old chunks go before its new ones come in
        chunks = splitter.split_documents([Document(path.read_text(), metadata={"source": source})])
        total += len(store.add_documents(chunks))
    return total


def format_docs(docs: list[Document]) -> str:
    return "\n\n".join(f"[{d.metadata.get('source')}]\n{d.page_content}" for d in docs)


def answer_from_context(prompt: PromptValue) -> str:
    """A stand-in for a chat model: the first passage of the context (the best-ranked chunk)."""
    system = prompt.to_messages()[0].content
    context = str(system).split("Context:\n", 1)[1]
    return context.split("\n\n", 1)[0]


def build_chain(
    store: VecDBVectorStore, llm: Runnable[Any, Any] | None = None, k: int = 3
) -> Runnable[str, str]:
    retriever = store.as_retriever(search_kwargs={"k": k})
    model = llm if llm is not None else RunnableLambda(answer_from_context)
    return (
        {"context": retriever | format_docs, "question": RunnablePassthrough()}
        | PROMPT
        | model
        | StrOutputParser()
    )


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("question")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the vecdb server's REST URL")
    parser.add_argument("--collection", default="handbook")
    args = parser.parse_args(argv)
    with VecDBVectorStore(args.collection, url=args.url) as store:
        print(f"indexed {load_folder(store, args.folder)} chunks from {args.folder}")
        answer = build_chain(store).invoke(args.question)
    print(answer)
    return answer


if __name__ == "__main__":
    main()
