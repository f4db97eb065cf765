namespace Sandbox.Agent.Containers;

/// <summary>
/// crun makes /dev/core -> /proc/kcore in every container /dev it populates; runc makes it only when its kernel has
/// /proc/kcore. The guest's kernel (Debian's) has it, while the host's may not, and a container's /dev should be what
/// runc on the host would give it. When the host says it has no /proc/kcore, the agent removes crun's link between
/// crun create and crun start, through the waiting init's root (/proc/PID/root, which resolves in the container's
/// mount namespace). Only a symlink to /proc/kcore is removed: a /dev the spec binds from elsewhere is left alone.
/// </summary>
public static class DevCoreLink
{
    public const string Target = "/proc/kcore";

    public static void RemoveFrom(int initPid, string owner)
    {
        string link = $"/proc/{initPid}/root/dev/core";
        try
        {
            var info = new FileInfo(link);
            if (info.LinkTarget == Target)
                File.Delete(link);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            AgentLog.Write($"{owner}: could not remove the /dev/core link crun made ({link}): {e.Message}");
        }
    }
}
