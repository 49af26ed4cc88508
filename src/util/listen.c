#include "util/listen.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Sets "<before><path><after>: <strerror(e)>"; returns -e. */
static int fail(GError **err, int e, const char *before, const char *path, const char *after)
{
	g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e), "%s%s%s: %s", before, path,
		    after, g_strerror(e));
	return -e;
}

/* Refuses to take over a socket that another process is serving. */
static int clear_stale(const char *path, GError **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat sb;
	int s, rc;

	if (lstat(path, &sb) < 0)
		return errno == ENOENT ? 0 : fail(err, errno, "", path, "");
	if (!S_ISSOCK(sb.st_mode)) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_EXIST,
			    "%s exists and is not a socket", path);
		return -EEXIST;
	}
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return fail(err, errno, "", path, ": socket");
	memcpy(sa.sun_path, path, strlen(path) + 1);
	rc = connect(s, (struct sockaddr *)&sa, sizeof(sa));
	close(s);
	if (rc == 0) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_EXIST,
			    "%s is in use by another process", path);
		return -EADDRINUSE;
	}
	unlink(path);
	return 0;
}

int viod_unix_listen(const char *path, mode_t mode, int backlog, struct stat *st,
		     GError **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	g_autofree char *tmp = g_strdup_printf("%s.%d.tmp", path, (int)getpid());
	struct stat sb;
	mode_t old = 0;
	int fd, rc;

	if (strlen(tmp) >= sizeof(sa.sun_path)) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NAMETOOLONG,
			    "socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	rc = clear_stale(path, err);
	if (rc < 0)
		return rc;
	unlink(tmp);
	memcpy(sa.sun_path, tmp, strlen(tmp) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fail(err, errno, "", path, ": socket");
	/* umask is per process: a file another thread creates meanwhile can
	 * only come out more restricted than it asked. */
	if (mode)
		old = umask(~mode & 0777);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (mode)
		umask(old);
	if (rc < 0 || (mode && chmod(tmp, mode) < 0) || lstat(tmp, &sb) < 0 ||
	    listen(fd, backlog) < 0 || rename(tmp, path) < 0) {
		rc = fail(err, errno, "cannot listen on ", path, "");
		close(fd);
		unlink(tmp);
		return rc;
	}
	if (st)
		*st = sb;
	return fd;
}
