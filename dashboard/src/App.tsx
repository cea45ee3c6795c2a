import "@mantine/core/styles.css";
import "@mantine/notifications/styles.css";
import "@mantine/charts/styles.css";
import { lazy, Suspense, useEffect, type ReactNode } from "react";
import { DirectionProvider, Loader, Center, MantineProvider, createTheme, useDirection } from "@mantine/core";
import { Notifications } from "@mantine/notifications";
import { ModalsProvider } from "@mantine/modals";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { BrowserRouter, Navigate, Route, Routes, useLocation } from "react-router-dom";
import { ApiError } from "./api/client";
import { AuthProvider, useAuth } from "./auth";
import { I18nProvider, useI18n } from "./i18n";
import { Layout } from "./components/Layout";
import { LoginPage } from "./pages/Login";

const Overview = lazy(() => import("./pages/Overview"));
const Users = lazy(() => import("./pages/Users"));
const UserDetail = lazy(() => import("./pages/UserDetail"));
const Templates = lazy(() => import("./pages/Templates"));
const Admins = lazy(() => import("./pages/Admins"));
const Hosts = lazy(() => import("./pages/Hosts"));
const CoreConfig = lazy(() => import("./pages/CoreConfig"));
const Nodes = lazy(() => import("./pages/Nodes"));

const theme = createTheme({ primaryColor: "blue", defaultRadius: "md", fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, Vazirmatn, Tahoma, sans-serif" });

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      retry: (count, error) => !(error instanceof ApiError && error.status >= 400 && error.status < 500) && count < 2,
      refetchOnWindowFocus: false,
    },
  },
});

/** The router base is the path the server put in <base href> (the dashboard path). */
export function routerBase(): string {
  const path = new URL(document.baseURI).pathname;
  return path.endsWith("/") ? path.slice(0, -1) : path;
}

function SyncDirection() {
  const { dir } = useI18n();
  const { setDirection } = useDirection();
  useEffect(() => setDirection(dir), [dir, setDirection]);
  return null;
}

function RequireAuth({ children, sudo = false }: { children: ReactNode; sudo?: boolean }) {
  const { token, admin, isSudo } = useAuth();
  const location = useLocation();
  if (!token) return <Navigate to="/login" replace state={{ from: location.pathname }} />;
  if (sudo && admin && !isSudo) return <Navigate to="/" replace />;
  return <>{children}</>;
}

const fallback = (
  <Center h={200}>
    <Loader />
  </Center>
);

function AppRoutes() {
  return (
    <Routes>
      <Route path="/login" element={<LoginPage />} />
      <Route
        element={
          <RequireAuth>
            <Layout />
          </RequireAuth>
        }
      >
        <Route index element={<Suspense fallback={fallback}><Overview /></Suspense>} />
        <Route path="users" element={<Suspense fallback={fallback}><Users /></Suspense>} />
        <Route path="users/:username" element={<Suspense fallback={fallback}><UserDetail /></Suspense>} />
        <Route path="templates" element={<Suspense fallback={fallback}><Templates /></Suspense>} />
        <Route path="admins" element={<RequireAuth sudo><Suspense fallback={fallback}><Admins /></Suspense></RequireAuth>} />
        <Route path="hosts" element={<RequireAuth sudo><Suspense fallback={fallback}><Hosts /></Suspense></RequireAuth>} />
        <Route path="core" element={<RequireAuth sudo><Suspense fallback={fallback}><CoreConfig /></Suspense></RequireAuth>} />
        <Route path="nodes" element={<RequireAuth sudo><Suspense fallback={fallback}><Nodes /></Suspense></RequireAuth>} />
        <Route path="*" element={<Navigate to="/" replace />} />
      </Route>
    </Routes>
  );
}

export function App() {
  return (
    <I18nProvider>
      <DirectionProvider>
        <MantineProvider theme={theme} defaultColorScheme="auto">
          <SyncDirection />
          <Notifications position="bottom-right" autoClose={2500} />
          <QueryClientProvider client={queryClient}>
            <ModalsProvider>
            <AuthProvider>
              <BrowserRouter basename={routerBase()}>
                <AppRoutes />
              </BrowserRouter>
            </AuthProvider>
            </ModalsProvider>
          </QueryClientProvider>
        </MantineProvider>
      </DirectionProvider>
    </I18nProvider>
  );
}
