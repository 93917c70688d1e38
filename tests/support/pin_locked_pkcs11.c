/* A PKCS#11 module for tests: SoftHSM2 with the holder's PIN of chosen keys reported locked.

   SoftHSM2 never locks a user PIN, however many wrong ones it is given. This module is what pkictl loads
   by path instead (--module, or tokens.toml); it hands out SoftHSM2's own function list with five entries
   replaced, so every other call reaches SoftHSM2 unchanged.

   Which keys: the token serials listed, one a line, in the file named by PKCS11_DOUBLE_LOCKED (none when
   it is unset or missing). What a listed key does, by PKCS11_DOUBLE_PIN:
     locked     (default) C_GetTokenInfo reports CKF_USER_PIN_LOCKED and C_Login as the user returns
                CKR_PIN_LOCKED, as a locked key does;
     refuses    only C_Login returns CKR_PIN_LOCKED (a key that does not set the flag);
     final-try  C_GetTokenInfo reports CKF_USER_PIN_COUNT_LOW and CKF_USER_PIN_FINAL_TRY; log-ins go through.
   A C_InitPIN that succeeds (the SO setting a new user PIN: the unblock) takes the key off the list, as a
   real key's counter is reset.

   Built by tests/support/pin_double.py: gcc -shared -fPIC -DREAL_MODULE='"..."' (p11-kit's pkcs11.h). */

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

#ifndef REAL_MODULE
#define REAL_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#endif

static CK_FUNCTION_LIST_PTR real; /* SoftHSM2's */
static CK_FUNCTION_LIST ours;     /* a copy, five entries replaced */
static int initialized;           /* C_Initialize was called through this module */
static int owner;                 /* ... and it initialized SoftHSM2 (no other loader in the process had) */

/* The key's serial, blank padding removed; "" when it cannot be read. */
static void slot_serial(CK_SLOT_ID slot, char out[17]) {
    CK_TOKEN_INFO info;
    out[0] = '\0';
    if (real->C_GetTokenInfo(slot, &info) != CKR_OK)
        return;
    memcpy(out, info.serialNumber, 16);
    out[16] = '\0';
    for (int i = 15; i >= 0 && (out[i] == ' ' || out[i] == '\0'); i--)
        out[i] = '\0';
}

static void session_serial(CK_SESSION_HANDLE session, char out[17]) {
    CK_SESSION_INFO info;
    out[0] = '\0';
    if (real->C_GetSessionInfo(session, &info) == CKR_OK)
        slot_serial(info.slotID, out);
}

static const char *mode(void) {
    const char *m = getenv("PKCS11_DOUBLE_PIN");
    return m != NULL && *m != '\0' ? m : "locked";
}

/* Whether ``serial`` is listed; with ``unlist``, the file is rewritten without it. */
static int listed(const char *serial, int unlist) {
    const char *path = getenv("PKCS11_DOUBLE_LOCKED");
    if (path == NULL || *serial == '\0')
        return 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char kept[4096] = "", line[128];
    int hit = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        char bare[128];
        memcpy(bare, line, sizeof bare);
        bare[strcspn(bare, "\r\n")] = '\0';
        if (strcmp(bare, serial) == 0)
            hit = 1;
        else if (strlen(kept) + strlen(line) + 1 < sizeof kept)
            strcat(kept, line);
    }
    fclose(f);
    if (hit && unlist && (f = fopen(path, "w")) != NULL) {
        fputs(kept, f);
        fclose(f);
    }
    return hit;
}

static CK_RV initialize(CK_VOID_PTR args) {
    if (initialized)
        return CKR_CRYPTOKI_ALREADY_INITIALIZED;
    CK_RV rv = real->C_Initialize(args);
    owner = rv == CKR_OK;
    if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) /* loaded by path in the same process as well: share it */
        rv = CKR_OK;
    initialized = rv == CKR_OK;
    return rv;
}

static CK_RV finalize(CK_VOID_PTR reserved) {
    if (!initialized)
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    initialized = 0;
    return owner ? real->C_Finalize(reserved) : CKR_OK; /* never under another loader's feet */
}

static CK_RV get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info) {
    CK_RV rv = real->C_GetTokenInfo(slot, info);
    char serial[17];
    slot_serial(slot, serial);
    if (rv != CKR_OK || !listed(serial, 0))
        return rv;
    if (strcmp(mode(), "locked") == 0) {
        info->flags &= ~(CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY);
        info->flags |= CKF_USER_PIN_LOCKED;
    } else if (strcmp(mode(), "final-try") == 0) {
        info->flags |= CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY;
    }
    return rv;
}

static CK_RV login(CK_SESSION_HANDLE session, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len) {
    char serial[17];
    session_serial(session, serial);
    if (user == CKU_USER && strcmp(mode(), "final-try") != 0 && listed(serial, 0))
        return CKR_PIN_LOCKED;
    return real->C_Login(session, user, pin, len);
}

static CK_RV init_pin(CK_SESSION_HANDLE session, CK_UTF8CHAR_PTR pin, CK_ULONG len) {
    CK_RV rv = real->C_InitPIN(session, pin, len);
    if (rv == CKR_OK) {
        char serial[17];
        session_serial(session, serial);
        listed(serial, 1);
    }
    return rv;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out) {
    if (out == NULL)
        return CKR_ARGUMENTS_BAD;
    if (real == NULL) {
        void *lib = dlopen(REAL_MODULE, RTLD_NOW | RTLD_LOCAL);
        CK_C_GetFunctionList get = lib != NULL ? (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList") : NULL;
        if (get == NULL || get(&real) != CKR_OK)
            return CKR_GENERAL_ERROR;
        ours = *real;
        ours.C_Initialize = initialize;
        ours.C_Finalize = finalize;
        ours.C_GetTokenInfo = get_token_info;
        ours.C_Login = login;
        ours.C_InitPIN = init_pin;
        ours.C_GetFunctionList = C_GetFunctionList;
    }
    *out = &ours;
    return CKR_OK;
}
