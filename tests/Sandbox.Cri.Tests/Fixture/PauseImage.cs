using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Sandbox.Cri.Tests.Fixture;

/// <summary>
/// The pod sandbox ("pause") image for CRI's sandbox_image, so that nothing is pulled: the busybox OCI layout of
/// BusyboxOciImage with a new config whose entrypoint sleeps until SIGTERM/SIGINT. Same layer; new config, manifest
/// and index (with the io.containerd.image.name annotation naming the new image).
/// </summary>
public static class PauseImage
{
    public const string DefaultName = "docker.io/library/sandbox-pause:test";

    /// <summary>Exits 0 on TERM/INT; otherwise sleeps (one sleep process, no polling loop).</summary>
    public static readonly string[] Entrypoint = { "/bin/sh", "-c", "trap 'exit 0' TERM INT; sleep 2147483647 & wait" };

    public static void DeriveFrom(string busyboxLayoutTar, string pauseLayoutTar, string imageName = DefaultName)
    {
        var blobs = ReadEntries(busyboxLayoutTar);
        var index = JsonNode.Parse(blobs["index.json"])!.AsObject();
        var sourceManifestDigest = (string)index["manifests"]![0]!["digest"]!;
        var manifest = JsonNode.Parse(blobs[BlobPath(sourceManifestDigest)])!.AsObject();
        var config = JsonNode.Parse(blobs[BlobPath((string)manifest["config"]!["digest"]!)])!.AsObject();

        var process = config["config"]!.AsObject();
        process["Entrypoint"] = new JsonArray(Entrypoint.Select(a => (JsonNode)JsonValue.Create(a)!).ToArray());
        process.Remove("Cmd");
        byte[] configBytes = Encoding.UTF8.GetBytes(config.ToJsonString());
        string configDigest = Digest(configBytes);

        manifest["config"]!["digest"] = configDigest;
        manifest["config"]!["size"] = configBytes.Length;
        byte[] manifestBytes = Encoding.UTF8.GetBytes(manifest.ToJsonString());
        string manifestDigest = Digest(manifestBytes);

        var descriptor = index["manifests"]![0]!.AsObject();
        descriptor["digest"] = manifestDigest;
        descriptor["size"] = manifestBytes.Length;
        descriptor["annotations"] = new JsonObject
        {
            ["io.containerd.image.name"] = imageName,
            ["org.opencontainers.image.ref.name"] = imageName[(imageName.LastIndexOf(':') + 1)..],
        };

        using var output = File.Create(pauseLayoutTar);
        using var tar = new TarWriter(output, TarEntryFormat.Pax, leaveOpen: false);
        Add(tar, "oci-layout", blobs["oci-layout"]);
        Add(tar, "index.json", Encoding.UTF8.GetBytes(index.ToJsonString()));
        Add(tar, BlobPath(configDigest), configBytes);
        Add(tar, BlobPath(manifestDigest), manifestBytes);
        foreach (var layer in manifest["layers"]!.AsArray())
        {
            string path = BlobPath((string)layer!["digest"]!);
            Add(tar, path, blobs[path]);
        }
    }

    private static Dictionary<string, byte[]> ReadEntries(string tarPath)
    {
        var entries = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        using var input = File.OpenRead(tarPath);
        using var tar = new TarReader(input);
        while (tar.GetNextEntry() is { } entry)
        {
            if (entry.DataStream is null)
                continue;
            using var content = new MemoryStream();
            entry.DataStream.CopyTo(content);
            entries[entry.Name] = content.ToArray();
        }
        return entries;
    }

    private static string BlobPath(string digest) => "blobs/sha256/" + digest["sha256:".Length..];

    private static string Digest(byte[] data) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(data));

    private static void Add(TarWriter tar, string name, byte[] content) =>
        tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name)
        {
            Mode = (UnixFileMode)0b110_100_100,
            ModificationTime = DateTimeOffset.UnixEpoch,
            DataStream = new MemoryStream(content),
        });
}
