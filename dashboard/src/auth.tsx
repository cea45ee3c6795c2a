import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { getToken, onUnauthorized, request, setToken } from "./api/client";
import { useCurrentAdmin } from "./api/hooks";
import type { Admin } from "./api/types";

interface Auth {
  token: string | null;
  admin: Admin | undefined;
  isSudo: boolean;
  login: (username: string, password: string) => Promise<void>;
  logout: () => void;
}

const AuthContext = createContext<Auth | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const [token, setTokenState] = useState<string | null>(() => getToken());
  const client = useQueryClient();
  const admin = useCurrentAdmin(!!token);

  const logout = useCallback(() => {
    setToken(null);
    setTokenState(null);
    client.clear();
  }, [client]);

  useEffect(() => {
    onUnauthorized(logout);
    return () => onUnauthorized(null);
  }, [logout]);

  const login = useCallback(
    async (username: string, password: string) => {
      const body = await request<{ access_token: string }>("/admin/token", { form: { username, password } });
      client.clear();
      setToken(body.access_token);
      setTokenState(body.access_token);
    },
    [client],
  );

  const value = useMemo<Auth>(
    () => ({ token, admin: admin.data, isSudo: admin.data?.is_sudo ?? false, login, logout }),
    [token, admin.data, login, logout],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): Auth {
  const value = useContext(AuthContext);
  if (!value) throw new Error("useAuth outside AuthProvider");
  return value;
}
