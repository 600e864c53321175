/* TEMPORARY: placeholder until the etcd session lands (delete me). */
#include "netagent/etcd.h"
void na_etcd_info(na_etcd_t *e, json_t *obj)
{
	(void)e, (void)obj;
}
