# Aliases of README's two commands, `./run.sh demo` and `./run.sh test`, for those used to make.
.PHONY: demo test clean

demo:
	./run.sh demo

test:
	./run.sh test

clean:
	-.venv/bin/atlas es stop
	rm -rf .venv
