"""Video: uploads (plain and resumable), probing, HLS ladder transcoding with PyAV, storage
backends (local disk, Cloudinary), the transcode job queue and hooks that authorize playback."""
