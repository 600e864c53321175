#include "netagent/file.h"
#include "netagent/util.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int na_file_put(const char *path, const void *data, size_t len, mode_t mode, uid_t uid, gid_t gid,
		na_err_t *err)
{
	char tmp[4096];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return na_err_set(err, 500, "internal_error", NULL, "path too long: %s", path);
	/* A leftover of a crash is ours to replace; O_EXCL then refuses
	 * whatever else appears there in between. */
	unlink(tmp);
	cleanup_close int fd =
	    open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode & 0600);
	if (fd < 0)
		return na_err_errno(err, errno, "create %s", tmp);
	const char *p = data;
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, p + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = w < 0 ? errno : EIO;
			unlink(tmp);
			return na_err_errno(err, e, "write %s", tmp);
		}
		off += (size_t)w;
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0) {
		int e = errno;
		unlink(tmp);
		return na_err_errno(err, e, "chown %s", tmp);
	}
	if (fchmod(fd, mode) < 0 || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return na_err_errno(err, e, "install %s", path);
	}
	return 0;
}
