// Command nnp prints its effective user ID. Installed setuid root in the
// nonewprivs test image, it shows whether no_new_privs stopped the
// setuid bit from raising the effective ID.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("Effective uid: %d\n", os.Geteuid())
}
