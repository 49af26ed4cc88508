/*
 * Replays fuzzer inputs without libFuzzer: every file named on the command
 * line, and every regular file in every directory named (one level, in
 * name order), is fed once to LLVMFuzzerTestOneInput. Prints TAP, one line
 * per file; a crash or sanitizer report kills the process, which the test
 * harness reports as a failure.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned int count, failed;

/* Reads a whole file into an exact-size buffer (as libFuzzer passes it,
 * so that ASan sees reads past the end). */
static uint8_t *slurp(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long len;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		goto out;
	buf = malloc(len ? (size_t)len : 1);
	if (buf && len && fread(buf, 1, (size_t)len, f) != (size_t)len) {
		free(buf);
		buf = NULL;
	}
	*size = (size_t)len;
out:
	fclose(f);
	return buf;
}

static void replay_file(const char *path)
{
	size_t size = 0;
	uint8_t *buf = slurp(path, &size);

	count++;
	if (!buf) {
		failed++;
		printf("not ok %u - replay %s # cannot read\n", count, path);
		return;
	}
	/* Announce first: if the target crashes, the log names the file. */
	printf("# %s (%zu bytes)\n", path, size);
	fflush(stdout);
	LLVMFuzzerTestOneInput(buf, size);
	free(buf);
	printf("ok %u - replay %s\n", count, path);
	fflush(stdout);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void replay_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;

	if (!d) {
		count++;
		failed++;
		printf("not ok %u - replay %s # cannot open directory\n", count, dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		char *path;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (asprintf(&path, "%s/%s", dir, de->d_name) < 0)
			abort();
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
			free(path);
			continue;
		}
		if (n == cap) {
			char **grown = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof(*names));

			if (!grown)
				abort();
			names = grown;
		}
		names[n++] = path;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		replay_file(names[i]);
		free(names[i]);
	}
	free(names);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
			replay_dir(argv[i]);
		else
			replay_file(argv[i]);
	}
	if (count == 0) {
		printf("1..0 # SKIP no inputs\n");
		return 0;
	}
	printf("1..%u\n", count);
	return failed ? 1 : 0;
}
